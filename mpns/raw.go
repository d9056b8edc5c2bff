package mpns

// Raw is a raw notification's body, passed to the running app unchanged.
type Raw []byte

// KindRaw is a raw notification; it carries no X-WindowsPhone-Target.
const KindRaw Kind = "raw"

var rawSpec = Spec{
	Kind: KindRaw, Targets: []string{"", "raw"}, ClassBase: 3,
	sample: func() Message { return Raw("a sample raw notification") },
}

// Kind is KindRaw.
func (Raw) Kind() Kind { return KindRaw }

// Payload is the body itself.
func (r Raw) Payload() []byte { return r }
