package mpns

import (
	"strings"
	"unicode/utf8"
)

// Toast is a toast notification: Text1 (bold title), Text2, Param (the deep
// link opened on tap, WP7.1+) and Sound (WP8 Update 3+).
type Toast struct {
	Text1, Text2, Param, Sound string
	Silent                     bool // <wp:Sound Silent="true"/>
}

// KindToast is a toast; senders mark it with X-WindowsPhone-Target
// TargetToast.
const (
	KindToast   Kind = "toast"
	TargetToast      = "toast"
)

var toastSpec = Spec{
	Kind: KindToast, Targets: []string{TargetToast}, ClassBase: 2, Root: "Toast",
	NeedsBind: true, LowPowerSuppressed: true,
	parse:  func(doc *document, n *Notification) (err error) { n.Toast, err = toastFromDocument(doc); return err },
	sample: func() Message { return &Toast{Text1: "Herald", Text2: "a sample toast"} },
}

// Kind is KindToast.
func (t *Toast) Kind() Kind { return KindToast }

// Payload is the toast's XML.
func (t *Toast) Payload() []byte { return t.XML() }

// ParseToast parses and validates a toast payload. At least one of Text1 and
// Text2 must be non-empty; Param, when set, must start with "/" or "?" and be
// at most MaxParamLength characters.
func ParseToast(body []byte) (*Toast, error) {
	doc, err := parseDocument(body)
	if err != nil {
		return nil, err
	}
	if doc.kind != "Toast" {
		return nil, newError(ErrMalformed, "payload is a <%s>, want <Toast>", doc.kind)
	}
	return toastFromDocument(doc)
}

func toastFromDocument(doc *document) (*Toast, error) {
	t := &Toast{}
	seen := make(map[string]bool, 4)
	for _, f := range doc.fields {
		if seen[f.name] {
			return nil, newError(ErrMalformed, "field %q repeated in Toast", f.name)
		}
		seen[f.name] = true
		switch f.name {
		case "Text1":
			t.Text1 = f.text
		case "Text2":
			t.Text2 = f.text
		case "Param":
			t.Param = f.text
		case "Sound":
			t.Sound = f.text
			if v, ok := attr(f.attrs, "Silent"); ok {
				switch strings.ToLower(strings.TrimSpace(v)) {
				case "true", "1":
					t.Silent = true
				case "false", "0":
				default:
					return nil, newError(ErrMalformed, "Sound Silent=%q is not true or false", v)
				}
			}
		default:
			return nil, newError(ErrUnknownField, "unknown field %q in Toast", f.name)
		}
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Toast) validate() error {
	if t.Text1 == "" && t.Text2 == "" {
		return newError(ErrMalformed, "toast has neither Text1 nor Text2")
	}
	if t.Param != "" {
		if t.Param[0] != '/' && t.Param[0] != '?' {
			return newError(ErrMalformed, "toast Param %q must start with \"/\" (a page) or \"?\" (a query)", clip(t.Param))
		}
		if n := utf8.RuneCountInString(t.Param); n > MaxParamLength {
			return newError(ErrMalformed, "toast Param is %d characters; the limit is %d", n, MaxParamLength)
		}
	}
	return nil
}

// XML returns the toast as an MPNS payload that ParseToast reads back to an
// equal value. Empty fields are left out.
func (t *Toast) XML() []byte {
	var w xmlWriter
	w.Grow(256)
	w.WriteString(xmlHeader)
	w.WriteString(`<wp:Notification xmlns:wp="WPNotification"><wp:Toast>`)
	if t.Text1 != "" {
		w.element("Text1", t.Text1)
	}
	if t.Text2 != "" {
		w.element("Text2", t.Text2)
	}
	if t.Param != "" {
		w.element("Param", t.Param)
	}
	switch {
	case t.Silent:
		w.element("Sound", t.Sound, "Silent", "true")
	case t.Sound != "":
		w.element("Sound", t.Sound)
	}
	w.WriteString(`</wp:Toast></wp:Notification>`)
	return w.Bytes()
}
