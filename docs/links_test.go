package docs

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// pages are the Markdown files whose links are checked, relative to this
// directory.
func pages(t *testing.T) []string {
	t.Helper()
	mds, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(mds) == 0 {
		t.Fatal("no pages found")
	}
	return append(mds, filepath.Join("..", "README.md"))
}

// TestLinks: every relative link in docs/*.md and README.md names a file
// or directory that exists, and every #anchor a heading of the page it
// points into.
func TestLinks(t *testing.T) {
	anchors := map[string]map[string]bool{} // cleaned path -> anchors
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		a, err := headingAnchors(path)
		if err != nil {
			return nil, err
		}
		anchors[path] = a
		return a, nil
	}
	checked := 0
	for _, page := range pages(t) {
		links, err := pageLinks(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if err := checkLink(page, l.target, anchorsOf); err != nil {
				t.Errorf("%s:%d: link %q: %v", page, l.line, l.target, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no links found: the parser is broken")
	}
}

// TestLinkCheckerCatches: the checker itself finds a missing page, a
// missing anchor in another page and a missing anchor in the same page,
// and takes a good link of each kind.
func TestLinkCheckerCatches(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("b.md", "# B page\n\n## Running as an OS service\n\n## Twice\n\n## Twice\n")
	a := write("a.md", "# A\n\n## Local `code` & more!\n\n"+
		"[ok](b.md) [ok](b.md#running-as-an-os-service) [ok](#local-code--more) [ok](b.md#twice-1) [ok](https://example.com/x.md)\n"+
		"`[not a link](nowhere.md)`\n```\n[nor this](nowhere.md)\n```\n"+
		"[gone](security-local.md) [no anchor](b.md#running) [no anchor here](#b-page) [no third](b.md#twice-2)\n")
	anchorsOf := func(p string) (map[string]bool, error) { return headingAnchors(p) }
	links, err := pageLinks(a)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, l := range links {
		if checkLink(a, l.target, anchorsOf) != nil {
			bad = append(bad, l.target)
		}
	}
	want := []string{"security-local.md", "b.md#running", "#b-page", "b.md#twice-2"}
	if fmt.Sprint(bad) != fmt.Sprint(want) {
		t.Errorf("broken links found %q, want %q (all links: %+v)", bad, want, links)
	}
}

type link struct {
	target string
	line   int
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan   = regexp.MustCompile("`[^`]*`")
)

// pageLinks returns the targets of the inline links of a Markdown page,
// outside code blocks and code spans.
func pageLinks(path string) ([]link, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []link
	fenced := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{target: m[1], line: n})
		}
	}
	return out, sc.Err()
}

// checkLink resolves a link target found in page.
func checkLink(page, target string, anchorsOf func(string) (map[string]bool, error)) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if u.Scheme != "" || u.Host != "" {
		return nil // external: not this test's business
	}
	path := page
	if u.Path != "" {
		path = filepath.Join(filepath.Dir(page), filepath.FromSlash(u.Path))
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no such file: %s", path)
		}
	}
	if u.Fragment == "" {
		return nil
	}
	if !strings.HasSuffix(path, ".md") {
		return fmt.Errorf("an anchor into %s, which is not a Markdown page", path)
	}
	a, err := anchorsOf(filepath.Clean(path))
	if err != nil {
		return err
	}
	if !a[u.Fragment] {
		return fmt.Errorf("%s has no heading with anchor #%s", path, u.Fragment)
	}
	return nil
}

// headingAnchors returns the anchors GitHub gives a page's headings.
func headingAnchors(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := slugify(text)
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out, sc.Err()
}

// slugify is GitHub's heading anchor: lower case, punctuation dropped,
// spaces turned into hyphens (so "a & b" gives "a--b").
func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
