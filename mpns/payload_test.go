package mpns

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseToast(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Toast
		err     error
		errText string
	}{
		{name: "mpns.md sample", body: decl + `
<wp:Notification xmlns:wp="WPNotification"><wp:Toast>
  <wp:Text1>Score</wp:Text1><wp:Text2>Home 2 – 1 Away</wp:Text2>
  <wp:Param>/Match.xaml?id=42&amp;src=toast</wp:Param>
  <wp:Sound>Assets/goal.wav</wp:Sound>
</wp:Toast></wp:Notification>`,
			want: Toast{Text1: "Score", Text2: "Home 2 – 1 Away", Param: "/Match.xaml?id=42&src=toast", Sound: "Assets/goal.wav"}},
		{name: "jeffwilcox", body: jeffToast, want: Toast{Text1: "Score", Text2: "Home 2 - 1 Away", Param: "/Match.xaml?id=42&src=toast"}},
		{name: "python-mpns sound before param", body: pythonToast,
			want: Toast{Text1: "New mail", Text2: "From Ann", Param: "?folder=inbox", Sound: "Assets/ding.wav"}},
		{name: "silent sound", body: toastDoc(`<wp:Text1>Quiet</wp:Text1><wp:Sound Silent="true"/>`), want: Toast{Text1: "Quiet", Silent: true}},
		{name: "silent false", body: toastDoc(`<wp:Text1>Loud</wp:Text1><wp:Sound Silent="false">a.wav</wp:Sound>`), want: Toast{Text1: "Loud", Sound: "a.wav"}},
		{name: "silent bogus", body: toastDoc(`<wp:Text1>x</wp:Text1><wp:Sound Silent="maybe"/>`), err: ErrMalformed, errText: `Silent="maybe"`},
		// PushSharp (XElement.ToString) output: no declaration, indented, and
		// values it escaped twice, which arrive with a literal "&amp;".
		{name: "pushsharp indented, double escaped", body: "<wp:Notification xmlns:wp=\"WPNotification\">\r\n  <wp:Toast>\r\n" +
			"    <wp:Text1>Tom &amp;amp; Jerry</wp:Text1>\r\n    <wp:Param>/Show.xaml?a=1&amp;amp;</wp:Param>\r\n  </wp:Toast>\r\n</wp:Notification>",
			want: Toast{Text1: "Tom &amp; Jerry", Param: "/Show.xaml?a=1&amp;"}},
		{name: "escapes and char refs", body: toastDoc(`<wp:Text1>&lt;b&gt; &quot;q&quot; &apos;a&apos; &#x263A; &#65;</wp:Text1>`),
			want: Toast{Text1: `<b> "q" 'a' ☺ A`}},
		{name: "CDATA and comments", body: toastDoc(`<!-- c --><wp:Text1><![CDATA[a & <b>]]><!-- d --> c</wp:Text1>`), want: Toast{Text1: "a & <b> c"}},
		{name: "text trimmed", body: toastDoc("<wp:Text1>\n  Hi  \n</wp:Text1><wp:Text2>   </wp:Text2>"), want: Toast{Text1: "Hi"}},
		{name: "Text2 only", body: toastDoc(`<wp:Text2>second</wp:Text2>`), want: Toast{Text2: "second"}},
		{name: "query param", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Param>?k=v</wp:Param>`), want: Toast{Text1: "a", Param: "?k=v"}},
		{name: "param 256", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Param>/` + strings.Repeat("p", 255) + `</wp:Param>`),
			want: Toast{Text1: "a", Param: "/" + strings.Repeat("p", 255)}},
		{name: "param 257", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Param>/` + strings.Repeat("p", 256) + `</wp:Param>`), err: ErrMalformed, errText: "257 characters"},
		{name: "param relative", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Param>Page.xaml</wp:Param>`), err: ErrMalformed, errText: `must start with "/"`},
		{name: "no text", body: toastDoc(`<wp:Param>/P.xaml</wp:Param>`), err: ErrMalformed, errText: "neither Text1 nor Text2"},
		{name: "empty toast", body: toastDoc(``), err: ErrMalformed},
		{name: "unknown field", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Text3>c</wp:Text3>`), err: ErrUnknownField, errText: `unknown field "Text3" in Toast`},
		{name: "repeated field", body: toastDoc(`<wp:Text1>a</wp:Text1><wp:Text1>b</wp:Text1>`), err: ErrMalformed, errText: `"Text1" repeated`},
		{name: "tile body", body: jeffFlip, err: ErrMalformed, errText: "want <Toast>"},

		// Namespace variants.
		{name: "no namespace", body: `<Notification><Toast><Text1>hand</Text1></Toast></Notification>`, want: Toast{Text1: "hand"}},
		{name: "default namespace", body: `<Notification xmlns="WPNotification"><Toast><Text1>dflt</Text1></Toast></Notification>`, want: Toast{Text1: "dflt"}},
		{name: "undeclared wp prefix", body: `<wp:Notification><wp:Toast><wp:Text1>forgot</wp:Text1></wp:Toast></wp:Notification>`, want: Toast{Text1: "forgot"}},
		{name: "other prefix", body: `<m:Notification xmlns:m="WPNotification"><m:Toast><m:Text1>m</m:Text1></m:Toast></m:Notification>`, want: Toast{Text1: "m"}},
		{name: "foreign namespace", body: `<wp:Notification xmlns:wp="urn:other"><wp:Toast><wp:Text1>x</wp:Text1></wp:Toast></wp:Notification>`,
			err: ErrMalformed, errText: "not in the WPNotification namespace"},
		{name: "foreign field namespace", body: `<wp:Notification xmlns:wp="WPNotification" xmlns:x="urn:x"><wp:Toast><x:Text1>x</x:Text1></wp:Toast></wp:Notification>`,
			err: ErrMalformed, errText: "{urn:x}Text1"},

		// Declarations and encodings.
		{name: "python single-quoted declaration", body: `<?xml version='1.0' encoding='utf-8'?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>py</wp:Text1></wp:Toast></wp:Notification>`,
			want: Toast{Text1: "py"}},
		{name: "UTF-8 upper case", body: strings.Replace(toastDoc(`<wp:Text1>é</wp:Text1>`), "utf-8", "UTF-8", 1), want: Toast{Text1: "é"}},
		{name: "utf8 alias", body: strings.Replace(toastDoc(`<wp:Text1>é</wp:Text1>`), "utf-8", "utf8", 1), want: Toast{Text1: "é"}},
		{name: "us-ascii", body: strings.Replace(toastDoc(`<wp:Text1>plain &#233;</wp:Text1>`), "utf-8", "US-ASCII", 1), want: Toast{Text1: "plain é"}},
		{name: "us-ascii with non-ASCII byte", body: strings.Replace(toastDoc(`<wp:Text1>é</wp:Text1>`), "utf-8", "us-ascii", 1), err: ErrMalformed},
		{name: "latin-1 refused", body: strings.Replace(toastDoc(`<wp:Text1>x</wp:Text1>`), "utf-8", "ISO-8859-1", 1), err: ErrMalformed, errText: `encoding "ISO-8859-1" is not supported`},
		{name: "utf-16 refused", body: strings.Replace(toastDoc(`<wp:Text1>x</wp:Text1>`), "utf-8", "utf-16", 1), err: ErrMalformed},
		{name: "BOM", body: "\xEF\xBB\xBF" + toastDoc(`<wp:Text1>bom</wp:Text1>`), want: Toast{Text1: "bom"}},
		{name: "invalid UTF-8", body: toastDoc("<wp:Text1>\xff</wp:Text1>"), err: ErrMalformed},
		{name: "declaration not first", body: " " + toastDoc(`<wp:Text1>x</wp:Text1>`), err: ErrMalformed},
		{name: "other processing instruction", body: decl + `<?php echo 1 ?>` + toastDoc(`<wp:Text1>x</wp:Text1>`)[len(decl):], err: ErrMalformed, errText: "<?php?>"},

		// Hostile and broken documents.
		{name: "billion laughs", body: `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` +
			`<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>&lol2;</wp:Text1></wp:Toast></wp:Notification>`, err: ErrMalformed, errText: "DTD"},
		{name: "external entity", body: `<!DOCTYPE n [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Notification><Toast><Text1>&xxe;</Text1></Toast></Notification>`,
			err: ErrMalformed, errText: "<!DOCTYPE>"},
		{name: "undeclared entity", body: toastDoc(`<wp:Text1>&xxe;</wp:Text1>`), err: ErrMalformed},
		{name: "element inside field", body: toastDoc(`<wp:Text1><b>bold</b></wp:Text1>`), err: ErrMalformed, errText: "fields hold text only"},
		{name: "deep nesting", body: toastDoc(`<wp:Text1>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</wp:Text1>`), err: ErrMalformed},
		{name: "nesting without end", body: `<Notification><Toast>` + strings.Repeat("<Text1>", 10000), err: ErrMalformed, errText: "inside field <Text1>"},
		{name: "nested roots", body: strings.Repeat("<Notification>", 50), err: ErrMalformed, errText: "want <Toast> or <Tile>"},
		{name: "trailing garbage", body: jeffToast + "garbage", err: ErrMalformed, errText: "outside the root element"},
		{name: "trailing element", body: jeffToast + "<wp:Notification/>", err: ErrMalformed, errText: "after the root element"},
		{name: "trailing whitespace and comment", body: jeffToast + "\r\n<!-- sent by test -->\n", want: Toast{Text1: "Score", Text2: "Home 2 - 1 Away", Param: "/Match.xaml?id=42&src=toast"}},
		{name: "text between fields", body: toastDoc(`<wp:Text1>a</wp:Text1>stray`), err: ErrMalformed, errText: "between elements"},
		{name: "wrong root", body: `<wp:Toast xmlns:wp="WPNotification"><wp:Text1>a</wp:Text1></wp:Toast>`, err: ErrMalformed, errText: "root element is <Toast>"},
		{name: "wrong child", body: `<wp:Notification xmlns:wp="WPNotification"><wp:Badge/></wp:Notification>`, err: ErrMalformed, errText: "want <Toast> or <Tile>"},
		{name: "two children", body: `<Notification><Toast><Text1>a</Text1></Toast><Toast><Text1>b</Text1></Toast></Notification>`, err: ErrMalformed, errText: "more than one"},
		{name: "empty root", body: `<Notification/>`, err: ErrMalformed, errText: "no <Toast> or <Tile>"},
		{name: "no root", body: "  <!-- nothing -->  ", err: ErrMalformed, errText: "no <Notification>"},
		{name: "unclosed", body: `<Notification><Toast><Text1>a</Text1>`, err: ErrMalformed},
		{name: "mismatched end tag (java-mpns 0.x toast)", body: decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>a</wp:Text1></wp:Tile></wp:Notification>`,
			err: ErrMalformed, errText: "malformed XML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToast([]byte(tt.body))
			checkErr(t, err, tt.err, tt.errText)
			if tt.err != nil {
				return
			}
			if *got != tt.want {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
			again, err := ParseToast(got.XML())
			if err != nil {
				t.Fatalf("XML() does not parse: %v\n%s", err, got.XML())
			}
			if *again != *got {
				t.Errorf("round trip: got %+v, want %+v", *again, *got)
			}
		})
	}
}

func TestToastXML(t *testing.T) {
	got := string((&Toast{Text1: "A & B", Text2: `"<2>"`, Param: "/P.xaml?a=1&b=2", Silent: true}).XML())
	want := decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>A &amp; B</wp:Text1>` +
		`<wp:Text2>&#34;&lt;2&gt;&#34;</wp:Text2><wp:Param>/P.xaml?a=1&amp;b=2</wp:Param><wp:Sound Silent="true"></wp:Sound></wp:Toast></wp:Notification>`
	if got != want {
		t.Errorf("XML() =\n%s\nwant\n%s", got, want)
	}
}

func TestParseTile(t *testing.T) {
	cycleImages := ""
	var cycleFields []Field
	for i := 1; i <= 9; i++ {
		name := "CycleImage" + string(rune('0'+i))
		cycleImages += "<wp:" + name + ">/Assets/c" + string(rune('0'+i)) + ".png</wp:" + name + ">"
		cycleFields = append(cycleFields, Field{Name: name, Value: "/Assets/c" + string(rune('0'+i)) + ".png"})
	}
	long := "http://img.example.com/" + strings.Repeat("i", MaxImageURLLength-len("http://img.example.com/"))

	tests := []struct {
		name    string
		body    string
		want    Tile
		err     error
		errText string
	}{
		{name: "mpns.md WP7 sample", body: `<wp:Notification xmlns:wp="WPNotification"><wp:Tile Id="/Sec.xaml?x=1">
  <wp:BackgroundImage>http://img.example.com/t.png</wp:BackgroundImage>
  <wp:Count>5</wp:Count><wp:Title>Inbox</wp:Title>
  <wp:BackTitle Action="Clear"></wp:BackTitle><wp:BackContent>3 new</wp:BackContent>
</wp:Tile></wp:Notification>`,
			want: Tile{ID: "/Sec.xaml?x=1", Fields: []Field{
				{Name: "BackgroundImage", Value: "http://img.example.com/t.png"}, {Name: "Count", Value: "5"}, {Name: "Title", Value: "Inbox"},
				{Name: "BackTitle", Clear: true}, {Name: "BackContent", Value: "3 new"}}}},
		{name: "mpns.md Iconic sample", body: `<wp:Notification xmlns:wp="WPNotification" Version="2.0"><wp:Tile Template="IconicTile">
  <wp:IconImage>/Assets/icon.png</wp:IconImage><wp:WideContent1>Meeting 10:00</wp:WideContent1>
  <wp:Count>3</wp:Count><wp:BackgroundColor>#FF1BA1E2</wp:BackgroundColor>
</wp:Tile></wp:Notification>`,
			want: Tile{Template: "IconicTile", Fields: []Field{{Name: "IconImage", Value: "/Assets/icon.png"},
				{Name: "WideContent1", Value: "Meeting 10:00"}, {Name: "Count", Value: "3"}, {Name: "BackgroundColor", Value: "#FF1BA1E2"}}}},
		{name: "jeffwilcox flip", body: jeffFlip, want: Tile{ID: "/Sec.xaml?x=1", Template: "FlipTile", Fields: []Field{
			{Name: "BackgroundImage", Value: "http://img.example.com/t.png"}, {Name: "Count", Value: "5"}, {Name: "Title", Clear: true},
			{Name: "SmallBackgroundImage", Value: "/Assets/small.png"}, {Name: "WideBackContent", Value: "Wide back"}}}},
		{name: "pushsharp self-closing clear", body: pushSharpTile, want: Tile{ID: "/Sec.xaml?x=1", Fields: []Field{
			{Name: "BackgroundImage", Value: "/Assets/bg.png"}, {Name: "Count", Clear: true}, {Name: "Title", Value: "Inbox"}}}},
		{name: "java-mpns iconic", body: javaIconic, want: Tile{ID: "/", Template: "IconicTile", Fields: []Field{
			{Name: "SmallIconImage", Value: "/Assets/small.png"}, {Name: "IconImage", Value: "/Assets/icon.png"},
			{Name: "WideContent1", Value: "Meeting 10:00"}, {Name: "Count", Value: "3"}, {Name: "Title", Value: "Calendar"},
			{Name: "BackgroundColor", Value: "#FF1BA1E2"}}}},
		// java-mpns's clear variant keeps the count text inside the cleared element.
		{name: "java-mpns iconic clear", body: tileDoc(` Version="2.0"`, ` Id="/Sec.xaml" Template="IconicTile"`,
			`<wp:WideContent1 Action="Clear"></wp:WideContent1><wp:WideContent2 Action="Clear"></wp:WideContent2><wp:WideContent3 Action="Clear"></wp:WideContent3><wp:Count Action="Clear">0</wp:Count>`),
			want: Tile{ID: "/Sec.xaml", Template: "IconicTile", Fields: []Field{{Name: "WideContent1", Clear: true},
				{Name: "WideContent2", Clear: true}, {Name: "WideContent3", Clear: true}, {Name: "Count", Clear: true}}}},
		{name: "java-mpns cycle without Version", body: tileDoc(``, ` Id="/Photos.xaml" Template="CycleTile"`,
			`<wp:SmallBackgroundImage>/Assets/s.png</wp:SmallBackgroundImage>`+cycleImages+`<wp:Count>0</wp:Count><wp:Title>Photos</wp:Title>`),
			want: Tile{ID: "/Photos.xaml", Template: "CycleTile", Fields: append(append([]Field{{Name: "SmallBackgroundImage", Value: "/Assets/s.png"}},
				cycleFields...), Field{Name: "Count", Value: "0"}, Field{Name: "Title", Value: "Photos"})}},
		{name: "flip all fields", body: tileDoc(` Version="2.0"`, ` Template="FlipTile"`,
			`<wp:SmallBackgroundImage>s</wp:SmallBackgroundImage><wp:WideBackgroundImage>w</wp:WideBackgroundImage>`+
				`<wp:WideBackBackgroundImage>wb</wp:WideBackBackgroundImage><wp:WideBackContent>wc</wp:WideBackContent>`+
				`<wp:BackgroundImage>b</wp:BackgroundImage><wp:Count>99</wp:Count><wp:Title>t</wp:Title>`+
				`<wp:BackBackgroundImage>bb</wp:BackBackgroundImage><wp:BackTitle>bt</wp:BackTitle><wp:BackContent>bc</wp:BackContent>`),
			want: Tile{Template: "FlipTile", Fields: []Field{{"SmallBackgroundImage", "s", false}, {"WideBackgroundImage", "w", false},
				{"WideBackBackgroundImage", "wb", false}, {"WideBackContent", "wc", false}, {"BackgroundImage", "b", false},
				{"Count", "99", false}, {"Title", "t", false}, {"BackBackgroundImage", "bb", false}, {"BackTitle", "bt", false}, {"BackContent", "bc", false}}}},
		{name: "no fields", body: tileDoc(``, ` Id="/Sec.xaml"`, ``), want: Tile{ID: "/Sec.xaml"}},
		{name: "self-closing tile", body: `<wp:Notification xmlns:wp="WPNotification"><wp:Tile/></wp:Notification>`, want: Tile{}},
		{name: "template case folded", body: tileDoc(``, ` Template="fliptile"`, `<wp:Count>1</wp:Count>`), want: Tile{Template: "FlipTile", Fields: []Field{{Name: "Count", Value: "1"}}}},
		{name: "empty template is WP7", body: tileDoc(``, ` Template=""`, `<wp:Title>x</wp:Title>`), want: Tile{Fields: []Field{{Name: "Title", Value: "x"}}}},
		{name: "empty value blanks", body: tileDoc(``, ``, `<wp:Title></wp:Title><wp:Count/>`), want: Tile{Fields: []Field{{Name: "Title"}, {Name: "Count"}}}},
		{name: "action case folded", body: tileDoc(``, ``, `<wp:Title Action="clear">ignored</wp:Title>`), want: Tile{Fields: []Field{{Name: "Title", Clear: true}}}},
		{name: "escaped id and values", body: tileDoc(``, ` Id="/Sec.xaml?a=1&amp;b=&quot;2&quot;"`, `<wp:Title>R&amp;D</wp:Title>`),
			want: Tile{ID: `/Sec.xaml?a=1&b="2"`, Fields: []Field{{Name: "Title", Value: "R&D"}}}},
		// python-mpns 0.x set an attribute literally named "attribute" instead of Id;
		// unknown attributes are ignored, so the update lands on the primary tile.
		{name: "python-mpns attribute bug", body: `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Tile attribute="/Sec.xaml"><wp:Count>2</wp:Count></wp:Tile></wp:Notification>`,
			want: Tile{Fields: []Field{{Name: "Count", Value: "2"}}}},
		{name: "RRGGBB colour", body: tileDoc(``, ` Template="IconicTile"`, `<wp:BackgroundColor>#1ba1e2</wp:BackgroundColor>`),
			want: Tile{Template: "IconicTile", Fields: []Field{{Name: "BackgroundColor", Value: "#1ba1e2"}}}},
		{name: "image 256", body: tileDoc(``, ``, `<wp:BackgroundImage>`+long+`</wp:BackgroundImage>`), want: Tile{Fields: []Field{{Name: "BackgroundImage", Value: long}}}},

		{name: "image 257", body: tileDoc(``, ``, `<wp:BackgroundImage>`+long+`x</wp:BackgroundImage>`), err: ErrMalformed, errText: "257 characters"},
		{name: "long cleared image is fine", body: tileDoc(``, ``, `<wp:BackgroundImage Action="Clear">`+long+`x</wp:BackgroundImage>`),
			want: Tile{Fields: []Field{{Name: "BackgroundImage", Clear: true}}}},
		{name: "count 150", body: tileDoc(``, ``, `<wp:Count>150</wp:Count>`), err: ErrMalformed, errText: "tile Count 150 is out of range 0-99"},
		{name: "count negative", body: tileDoc(``, ``, `<wp:Count>-1</wp:Count>`), err: ErrMalformed, errText: "out of range"},
		{name: "count word", body: tileDoc(``, ``, `<wp:Count>five</wp:Count>`), err: ErrMalformed, errText: `"five" is not an integer`},
		{name: "count plus", body: tileDoc(``, ``, `<wp:Count>+5</wp:Count>`), err: ErrMalformed},
		{name: "count fraction", body: tileDoc(``, ``, `<wp:Count>1.5</wp:Count>`), err: ErrMalformed},
		{name: "colour name", body: tileDoc(``, ` Template="IconicTile"`, `<wp:BackgroundColor>blue</wp:BackgroundColor>`), err: ErrMalformed, errText: "#AARRGGBB"},
		{name: "colour short", body: tileDoc(``, ` Template="IconicTile"`, `<wp:BackgroundColor>#FFF</wp:BackgroundColor>`), err: ErrMalformed},
		{name: "colour not hex", body: tileDoc(``, ` Template="IconicTile"`, `<wp:BackgroundColor>#GG1BA1E2</wp:BackgroundColor>`), err: ErrMalformed},
		{name: "unknown template", body: tileDoc(` Version="2.0"`, ` Template="LiveTile"`, ``), err: ErrUnknownTemplate, errText: `unknown tile template "LiveTile"`},
		{name: "unknown field in iconic", body: tileDoc(` Version="2.0"`, ` Template="IconicTile"`, `<wp:Foo>x</wp:Foo>`), err: ErrUnknownField, errText: `mpns: unknown field "Foo" in IconicTile`},
		{name: "flip field in iconic", body: tileDoc(``, ` Template="IconicTile"`, `<wp:BackgroundImage>x</wp:BackgroundImage>`), err: ErrUnknownField},
		{name: "flip field in WP7 tile", body: tileDoc(``, ``, `<wp:WideBackContent>x</wp:WideBackContent>`), err: ErrUnknownField, errText: "in WP7 tile"},
		{name: "cycle 10", body: tileDoc(``, ` Template="CycleTile"`, `<wp:CycleImage10>x</wp:CycleImage10>`), err: ErrUnknownField},
		{name: "field names are case sensitive", body: tileDoc(``, ``, `<wp:count>1</wp:count>`), err: ErrUnknownField},
		{name: "repeated field", body: tileDoc(``, ``, `<wp:Count>1</wp:Count><wp:Count>2</wp:Count>`), err: ErrMalformed, errText: `"Count" repeated`},
		{name: "repeated clear", body: tileDoc(``, ``, `<wp:Count Action="Clear"/><wp:Count>2</wp:Count>`), err: ErrMalformed},
		{name: "unknown action", body: tileDoc(``, ``, `<wp:Count Action="Reset"/>`), err: ErrMalformed, errText: `Action="Reset"`},
		{name: "element in field", body: tileDoc(``, ``, `<wp:Title><wp:Count>1</wp:Count></wp:Title>`), err: ErrMalformed},
		{name: "toast body", body: jeffToast, err: ErrMalformed, errText: "want <Tile>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTile([]byte(tt.body))
			checkErr(t, err, tt.err, tt.errText)
			if tt.err != nil {
				return
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
			xml := got.XML()
			if v2 := strings.Contains(string(xml), `Version="2.0"`); v2 != (got.Template != "") {
				t.Errorf("Version=\"2.0\" present = %v for template %q", v2, got.Template)
			}
			again, err := ParseTile(xml)
			if err != nil {
				t.Fatalf("XML() does not parse: %v\n%s", err, xml)
			}
			if !reflect.DeepEqual(again, got) {
				t.Errorf("round trip: got %+v, want %+v", again, got)
			}
		})
	}
}

func TestTileXML(t *testing.T) {
	tile := &Tile{ID: "/S.xaml?a=1&b=2", Template: "FlipTile", Fields: []Field{
		{Name: "Title", Value: "Q&A"}, {Name: "Count", Value: "ignored", Clear: true}}}
	want := decl + `<wp:Notification xmlns:wp="WPNotification" Version="2.0"><wp:Tile Id="/S.xaml?a=1&amp;b=2" Template="FlipTile">` +
		`<wp:Title>Q&amp;A</wp:Title><wp:Count Action="Clear"></wp:Count></wp:Tile></wp:Notification>`
	if got := string(tile.XML()); got != want {
		t.Errorf("XML() =\n%s\nwant\n%s", got, want)
	}
	want = decl + `<wp:Notification xmlns:wp="WPNotification"><wp:Tile></wp:Tile></wp:Notification>`
	if got := string((&Tile{}).XML()); got != want {
		t.Errorf("empty XML() = %s", got)
	}
}

func TestTemplateFields(t *testing.T) {
	for tmpl, n := range map[string]int{"": 6, "FlipTile": 10, "IconicTile": 8, "CycleTile": 12, "Nope": 0} {
		if got := len(TemplateFields(tmpl)); got != n {
			t.Errorf("TemplateFields(%q) has %d names, want %d", tmpl, got, n)
		}
	}
	f := TemplateFields("")
	f[0] = "changed"
	if TemplateFields("")[0] != "BackgroundImage" {
		t.Error("TemplateFields returned shared storage")
	}
}
