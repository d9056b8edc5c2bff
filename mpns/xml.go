package mpns

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Namespace is the XML namespace URI of MPNS payloads, literally
// "WPNotification" (usually bound to the prefix wp).
const Namespace = "WPNotification"

// maxDepth bounds element nesting: Notification > Toast|Tile > field is all
// a payload needs, and one level of slack gives a clearer error for an
// element inside a field than a bare depth complaint would.
const maxDepth = 4

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// document is a payload reduced to what toasts and tiles are made of: the
// attributes of the root and of its single child, and the child's text-only
// fields in document order.
type document struct {
	kind      string // "Toast" or "Tile"
	rootAttrs []xml.Attr
	attrs     []xml.Attr
	fields    []rawField
}

type rawField struct {
	name  string
	attrs []xml.Attr
	text  string // trimmed of surrounding whitespace
}

// inNamespace reports whether an element or attribute name belongs to MPNS:
// the WPNotification namespace, no namespace at all (hand-written senders
// forget xmlns), or the wp prefix left unresolved because its declaration
// was forgotten.
func inNamespace(n xml.Name) bool {
	return n.Space == "" || n.Space == Namespace || n.Space == "wp"
}

func qualified(n xml.Name) string {
	if n.Space == "" || n.Space == Namespace || n.Space == "wp" {
		return n.Local
	}
	return "{" + n.Space + "}" + n.Local
}

// attr returns the value of an MPNS attribute and whether it was present.
func attr(attrs []xml.Attr, local string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Local == local && inNamespace(a.Name) {
			return a.Value, true
		}
	}
	return "", false
}

// parseDocument reads a toast or tile payload with a streaming, strict
// decoder. It refuses DTDs (and so any entity expansion), nesting deeper
// than maxDepth, elements inside fields, and anything after the root.
func parseDocument(body []byte) (*document, error) {
	body = bytes.TrimPrefix(body, utf8BOM)
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = charsetReader

	var (
		doc      document
		depth    int
		started  bool // the root element has been opened
		finished bool // the root element has been closed
		first    = true
		field    *rawField
		text     strings.Builder
	)
	for ; ; first = false {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var cs *charsetError
			if errors.As(err, &cs) {
				return nil, newError(ErrMalformed, "%v", cs)
			}
			return nil, newError(ErrMalformed, "malformed XML: %s", strings.TrimPrefix(err.Error(), "XML syntax error on "))
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, newError(ErrMalformed, "processing instruction <?%s?> is not allowed", t.Target)
			}
			if !first {
				return nil, newError(ErrMalformed, "the XML declaration must come first")
			}
		case xml.Directive:
			// No DTDs: without one there is nothing to expand but the five
			// predefined entities, so entity bombs and external entities
			// never get started.
			return nil, newError(ErrMalformed, "<!%s> is not allowed: payloads may not carry a DTD", firstWord(t))
		case xml.Comment:
		case xml.CharData:
			if field != nil {
				text.Write(t)
			} else if !isSpace(t) {
				where := "outside the root element"
				if started && !finished {
					where = "between elements"
				}
				return nil, newError(ErrMalformed, "unexpected text %q %s", clip(string(t)), where)
			}
		case xml.StartElement:
			depth++
			if finished {
				return nil, newError(ErrMalformed, "element <%s> after the root element", qualified(t.Name))
			}
			if depth > maxDepth {
				return nil, newError(ErrMalformed, "elements nested deeper than %d levels", maxDepth)
			}
			if !inNamespace(t.Name) {
				return nil, newError(ErrMalformed, "element <%s> is not in the %s namespace", qualified(t.Name), Namespace)
			}
			switch depth {
			case 1:
				if t.Name.Local != "Notification" {
					return nil, newError(ErrMalformed, "root element is <%s>, want <Notification>", qualified(t.Name))
				}
				started = true
				doc.rootAttrs = t.Attr
			case 2:
				if t.Name.Local != "Toast" && t.Name.Local != "Tile" {
					return nil, newError(ErrMalformed, "<Notification> holds <%s>, want <Toast> or <Tile>", qualified(t.Name))
				}
				if doc.kind != "" {
					return nil, newError(ErrMalformed, "<Notification> holds more than one notification (<%s> after <%s>)", t.Name.Local, doc.kind)
				}
				doc.kind = t.Name.Local
				doc.attrs = t.Attr
			case 3:
				field = &rawField{name: t.Name.Local, attrs: t.Attr}
				text.Reset()
			default:
				return nil, newError(ErrMalformed, "element <%s> inside field <%s>: fields hold text only", qualified(t.Name), field.name)
			}
		case xml.EndElement:
			depth--
			switch depth {
			case 2:
				field.text = strings.TrimSpace(text.String())
				doc.fields = append(doc.fields, *field)
				field = nil
			case 0:
				finished = true
			}
		}
	}
	if !started {
		return nil, newError(ErrMalformed, "no <Notification> element")
	}
	if doc.kind == "" {
		return nil, newError(ErrMalformed, "<Notification> holds no <Toast> or <Tile>")
	}
	return &doc, nil
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

func firstWord(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexAny(s, " \t\r\n["); i >= 0 {
		s = s[:i]
	}
	return clip(s)
}

// clip shortens a string quoted in an error message.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !isRuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

type charsetError struct{ label string }

func (e *charsetError) Error() string {
	return fmt.Sprintf("encoding %q is not supported; send utf-8", e.label)
}

// charsetReader lets documents declare utf-8 in any spelling or us-ascii
// (a subset of UTF-8, checked as it is read); the decoder only asks about
// declarations other than utf-8 itself. Everything else is refused rather
// than transcoded: MPNS payloads are UTF-8.
func charsetReader(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8":
		return r, nil
	case "us-ascii", "ascii":
		return asciiReader{r}, nil
	}
	return nil, &charsetError{label}
}

type asciiReader struct{ r io.Reader }

func (a asciiReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	for _, c := range p[:n] {
		if c >= 0x80 {
			return 0, errors.New("non-ASCII byte in a document declared us-ascii")
		}
	}
	return n, err
}

// xmlWriter builds the payloads this package emits.
type xmlWriter struct{ bytes.Buffer }

func (w *xmlWriter) text(s string) {
	// EscapeText cannot fail writing to a bytes.Buffer.
	_ = xml.EscapeText(w, []byte(s))
}

func (w *xmlWriter) attr(name, value string) {
	w.WriteByte(' ')
	w.WriteString(name)
	w.WriteString(`="`)
	w.text(value)
	w.WriteByte('"')
}

// element writes <wp:name attrs...>value</wp:name>.
func (w *xmlWriter) element(name, value string, attrs ...string) {
	w.WriteString("<wp:")
	w.WriteString(name)
	for i := 0; i+1 < len(attrs); i += 2 {
		w.attr(attrs[i], attrs[i+1])
	}
	w.WriteByte('>')
	w.text(value)
	w.WriteString("</wp:")
	w.WriteString(name)
	w.WriteByte('>')
}

const xmlHeader = `<?xml version="1.0" encoding="utf-8"?>`
