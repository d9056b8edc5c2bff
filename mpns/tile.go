package mpns

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Tile templates. The empty template is the WP7 tile (StandardTileData),
// which FlipTile extends.
const (
	TemplateWP7    = ""
	TemplateFlip   = "FlipTile"
	TemplateIconic = "IconicTile"
	TemplateCycle  = "CycleTile"
)

// templateFields lists the fields of each template in the order the MPNS
// documentation gives them.
var templateFields = map[string][]string{
	TemplateWP7: {"BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent"},
	TemplateFlip: {"SmallBackgroundImage", "WideBackgroundImage", "WideBackBackgroundImage", "WideBackContent",
		"BackgroundImage", "Count", "Title", "BackBackgroundImage", "BackTitle", "BackContent"},
	TemplateIconic: {"SmallIconImage", "IconImage", "WideContent1", "WideContent2", "WideContent3",
		"Count", "Title", "BackgroundColor"},
	TemplateCycle: {"SmallBackgroundImage", "CycleImage1", "CycleImage2", "CycleImage3", "CycleImage4",
		"CycleImage5", "CycleImage6", "CycleImage7", "CycleImage8", "CycleImage9", "Count", "Title"},
}

var templateFieldSet = func() map[string]map[string]bool {
	m := make(map[string]map[string]bool, len(templateFields))
	for tmpl, names := range templateFields {
		set := make(map[string]bool, len(names))
		for _, n := range names {
			set[n] = true
		}
		m[tmpl] = set
	}
	return m
}()

// TemplateFields returns the field names a tile template accepts, in
// documentation order, or nil for an unknown template.
func TemplateFields(template string) []string {
	names, ok := templateFields[template]
	if !ok {
		return nil
	}
	return append([]string(nil), names...)
}

// canonicalTemplate maps a Template attribute value to its canonical
// spelling; ok is false for templates MPNS does not define.
func canonicalTemplate(v string) (string, bool) {
	v = strings.TrimSpace(v)
	for _, t := range []string{TemplateWP7, TemplateFlip, TemplateIconic, TemplateCycle} {
		if strings.EqualFold(v, t) {
			return t, true
		}
	}
	return "", false
}

func templateName(t string) string {
	if t == TemplateWP7 {
		return "WP7 tile"
	}
	return t
}

func templateLabel(t string) string {
	if t == TemplateWP7 {
		return "WP7"
	}
	return t
}

// IsImageField reports whether a tile field holds an image URI.
func IsImageField(name string) bool { return strings.Contains(name, "Image") }

// Field is one tile property. Clear is Action="Clear": the property is reset
// and Value is ignored (always "" when parsed).
type Field struct {
	Name, Value string
	Clear       bool
}

// Tile is a tile notification.
type Tile struct {
	ID       string  // Id attribute: a secondary tile's navigation URI; "" = the app's primary tile
	Template string  // "" for WP7 tiles, or "FlipTile", "IconicTile", "CycleTile"
	Fields   []Field // in document order, at most one per name
}

// KindTile is a tile update; senders mark it with X-WindowsPhone-Target
// TargetTile.
const (
	KindTile   Kind = "tile"
	TargetTile      = "token"
)

var tileSpec = Spec{
	Kind: KindTile, Targets: []string{TargetTile, "tile"}, ClassBase: 1, Root: "Tile",
	NeedsBind: true, LowPowerSuppressed: true,
	parse: func(doc *document, n *Notification) (err error) { n.Tile, err = tileFromDocument(doc); return err },
	sample: func() Message {
		return &Tile{Fields: []Field{{Name: "Title", Value: "Herald"}, {Name: "Count", Value: "1"}}}
	},
}

// Kind is KindTile.
func (t *Tile) Kind() Kind { return KindTile }

// Payload is the tile's XML.
func (t *Tile) Payload() []byte { return t.XML() }

// ParseTile parses and validates a tile payload: every field must belong to
// the tile's template (ErrUnknownField) and appear at most once; Count must
// be 0–99, BackgroundColor #AARRGGBB or #RRGGBB, and image URIs at most
// MaxImageURLLength characters (ErrMalformed). An unknown Template is
// ErrUnknownTemplate. A tile with no fields is valid.
func ParseTile(body []byte) (*Tile, error) {
	doc, err := parseDocument(body)
	if err != nil {
		return nil, err
	}
	if doc.kind != "Tile" {
		return nil, newError(ErrMalformed, "payload is a <%s>, want <Tile>", doc.kind)
	}
	return tileFromDocument(doc)
}

func tileFromDocument(doc *document) (*Tile, error) {
	t := &Tile{}
	t.ID, _ = attr(doc.attrs, "Id")
	if v, ok := attr(doc.attrs, "Template"); ok {
		tmpl, known := canonicalTemplate(v)
		if !known {
			return nil, newError(ErrUnknownTemplate, "unknown tile template %q (want FlipTile, IconicTile or CycleTile)", clip(v))
		}
		t.Template = tmpl
	}
	allowed := templateFieldSet[t.Template]
	for i, f := range doc.fields {
		if !allowed[f.name] {
			return nil, newError(ErrUnknownField, "unknown field %q in %s", f.name, templateName(t.Template))
		}
		for _, prev := range doc.fields[:i] {
			if prev.name == f.name {
				return nil, newError(ErrMalformed, "field %q repeated in %s", f.name, templateName(t.Template))
			}
		}
		field := Field{Name: f.name, Value: f.text}
		if action, ok := attr(f.attrs, "Action"); ok {
			switch a := strings.TrimSpace(action); {
			case strings.EqualFold(a, "Clear"):
				field = Field{Name: f.name, Clear: true}
			case a == "":
			default:
				return nil, newError(ErrMalformed, "field %q has Action=%q; the only action is Clear", f.name, clip(action))
			}
		}
		if !field.Clear {
			if err := checkFieldValue(f.name, field.Value); err != nil {
				return nil, err
			}
		}
		t.Fields = append(t.Fields, field)
	}
	return t, nil
}

// checkFieldValue validates the fields whose values have a format. An empty
// value is left alone: it blanks the property, which needs no format.
func checkFieldValue(name, value string) error {
	if value == "" {
		return nil
	}
	switch {
	case name == "Count":
		n, err := strconv.Atoi(value)
		if err != nil || value[0] == '+' {
			return newError(ErrMalformed, "tile Count %q is not an integer", clip(value))
		}
		if n < 0 || n > 99 {
			return newError(ErrMalformed, "tile Count %d is out of range 0-99", n)
		}
	case name == "BackgroundColor":
		if !isHexColor(value) {
			return newError(ErrMalformed, "tile BackgroundColor %q is not #AARRGGBB or #RRGGBB", clip(value))
		}
	case IsImageField(name):
		if n := utf8.RuneCountInString(value); n > MaxImageURLLength {
			return newError(ErrMalformed, "tile %s URI is %d characters; the limit is %d", name, n, MaxImageURLLength)
		}
	}
	return nil
}

func isHexColor(s string) bool {
	if len(s) != 7 && len(s) != 9 || s[0] != '#' {
		return false
	}
	for _, c := range []byte(s[1:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// XML returns the tile as an MPNS payload that ParseTile reads back to an
// equal value. WP8 templates get Version="2.0" on the root, as MPNS expects.
func (t *Tile) XML() []byte {
	var w xmlWriter
	w.Grow(512)
	w.WriteString(xmlHeader)
	w.WriteString(`<wp:Notification xmlns:wp="WPNotification"`)
	if t.Template != "" {
		w.WriteString(` Version="2.0"`)
	}
	w.WriteString(`><wp:Tile`)
	if t.ID != "" {
		w.attr("Id", t.ID)
	}
	if t.Template != "" {
		w.attr("Template", t.Template)
	}
	w.WriteByte('>')
	for _, f := range t.Fields {
		if f.Clear {
			w.element(f.Name, "", "Action", "Clear")
		} else {
			w.element(f.Name, f.Value)
		}
	}
	w.WriteString(`</wp:Tile></wp:Notification>`)
	return w.Bytes()
}

// Clone returns a deep copy of t.
func (t *Tile) Clone() *Tile {
	if t == nil {
		return nil
	}
	c := *t
	c.Fields = append([]Field(nil), t.Fields...)
	if len(c.Fields) == 0 {
		c.Fields = nil
	}
	return &c
}

// compatibleTemplates reports whether a tile created with one template
// accepts updates written for the other: FlipTile is WP7's superset, so the
// two mix; every other pair is a "Template type mismatch" on the device.
func compatibleTemplates(a, b string) bool {
	if a == b {
		return true
	}
	return (a == TemplateWP7 && b == TemplateFlip) || (a == TemplateFlip && b == TemplateWP7)
}

// Mergeable reports whether Merge can coalesce later into t without changing
// what the device ends up with: both must address the same tile with
// compatible templates. Queued updates that fail this must be kept apart.
func (t *Tile) Mergeable(later *Tile) bool {
	if t == nil || later == nil {
		return true
	}
	return t.ID == later.ID && compatibleTemplates(t.Template, later.Template)
}

// Merge returns a tile that has the effect of applying t and then later:
// field by field, later wins, and a later Clear replaces an earlier value.
// Fields keep the position of their first appearance. ID and Template come
// from later when set there. Neither input is modified.
//
// Merge is meant for updates to the same tile (see Mergeable); given two
// incompatible templates it still returns a tile, but the device would have
// rejected one of the two updates.
func (t *Tile) Merge(later *Tile) *Tile {
	if t == nil {
		return later.Clone()
	}
	m := t.Clone()
	if later == nil {
		return m
	}
	if later.ID != "" {
		m.ID = later.ID
	}
	if later.Template != "" {
		m.Template = later.Template
	}
	for _, f := range later.Fields {
		replaced := false
		for i := range m.Fields {
			if m.Fields[i].Name == f.Name {
				m.Fields[i] = f
				replaced = true
				break
			}
		}
		if !replaced {
			m.Fields = append(m.Fields, f)
		}
	}
	return m
}

// RemoteImages lists, in field order, the values of image fields that are
// absolute http or https URLs: the images a device has to fetch and that
// must come from a domain the tile was bound with.
func (t *Tile) RemoteImages() []string {
	var out []string
	for _, f := range t.Fields {
		if !f.Clear && IsImageField(f.Name) && isRemote(f.Value) {
			out = append(out, f.Value)
		}
	}
	return out
}

func isRemote(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return (scheme == "http" || scheme == "https") && u.Host != ""
}

// TileState is the stored state of one live tile on the device.
type TileState struct {
	Template string
	Fields   map[string]string
}

// Apply merges an update into the state: omitted fields keep their value,
// Clear deletes the field, and any other field is set (an empty value blanks
// it).
//
// The template is fixed at first use, that is, when the state has neither a
// template nor fields. A later update naming a different template is
// ErrTemplateMismatch and leaves the state unchanged, except that FlipTile
// and WP7 updates mix: a WP7 update to a FlipTile tile is applied as is, and
// a FlipTile update to a WP7 tile turns it into a FlipTile, as WP8 did with
// tiles created by WP7 apps. An update carrying a field its template does not
// define is ErrUnknownField, also leaving the state unchanged. These errors
// do not wrap ErrBadRequest: the update was a valid request, and it is the
// tile on the device that refuses it.
func (s *TileState) Apply(t *Tile) error {
	if t == nil {
		return nil
	}
	tmpl := s.Template
	switch {
	case t.Template == s.Template:
	case s.Template == TemplateWP7 && len(s.Fields) == 0:
		tmpl = t.Template
	case s.Template == TemplateWP7 && t.Template == TemplateFlip:
		tmpl = TemplateFlip
	case s.Template == TemplateFlip && t.Template == TemplateWP7:
	default:
		return &requestError{kind: ErrTemplateMismatch, msg: "Template type mismatch: the tile is " +
			templateLabel(s.Template) + ", the update is " + templateLabel(t.Template)}
	}
	allowed, ok := templateFieldSet[t.Template]
	if !ok {
		return &requestError{kind: ErrUnknownTemplate, msg: "unknown tile template " + strconv.Quote(t.Template)}
	}
	for _, f := range t.Fields {
		if !allowed[f.Name] {
			return &requestError{kind: ErrUnknownField, msg: "unknown field " + strconv.Quote(f.Name) + " in " + templateName(t.Template)}
		}
	}
	for _, f := range t.Fields {
		if f.Clear {
			delete(s.Fields, f.Name)
			continue
		}
		if s.Fields == nil {
			s.Fields = make(map[string]string)
		}
		s.Fields[f.Name] = f.Value
	}
	s.Template = tmpl
	return nil
}
