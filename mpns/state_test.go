package mpns

import (
	"errors"
	"maps"
	"reflect"
	"testing"
)

func TestTileMerge(t *testing.T) {
	f := func(name, value string) Field { return Field{Name: name, Value: value} }
	clr := func(name string) Field { return Field{Name: name, Clear: true} }
	tests := []struct {
		name         string
		first, later *Tile
		want         *Tile
	}{
		{"later wins, order kept",
			&Tile{ID: "/S", Fields: []Field{f("Count", "1"), f("Title", "a")}},
			&Tile{ID: "/S", Fields: []Field{f("Count", "2"), f("BackContent", "b")}},
			&Tile{ID: "/S", Fields: []Field{f("Count", "2"), f("Title", "a"), f("BackContent", "b")}}},
		{"later clear replaces value",
			&Tile{Fields: []Field{f("Count", "7"), f("Title", "a")}},
			&Tile{Fields: []Field{clr("Count")}},
			&Tile{Fields: []Field{clr("Count"), f("Title", "a")}}},
		{"later value replaces clear",
			&Tile{Fields: []Field{clr("BackTitle")}},
			&Tile{Fields: []Field{f("BackTitle", "back")}},
			&Tile{Fields: []Field{f("BackTitle", "back")}}},
		{"template from later when set",
			&Tile{Fields: []Field{f("Title", "wp7")}},
			&Tile{Template: "FlipTile", Fields: []Field{f("WideBackContent", "w")}},
			&Tile{Template: "FlipTile", Fields: []Field{f("Title", "wp7"), f("WideBackContent", "w")}}},
		{"template kept when later has none",
			&Tile{ID: "/S", Template: "FlipTile", Fields: []Field{f("Count", "1")}},
			&Tile{Fields: []Field{f("Count", "3")}},
			&Tile{ID: "/S", Template: "FlipTile", Fields: []Field{f("Count", "3")}}},
		{"empty later", &Tile{Fields: []Field{f("Count", "1")}}, &Tile{}, &Tile{Fields: []Field{f("Count", "1")}}},
		{"nil later", &Tile{Fields: []Field{f("Count", "1")}}, nil, &Tile{Fields: []Field{f("Count", "1")}}},
		{"nil first", nil, &Tile{Template: "IconicTile"}, &Tile{Template: "IconicTile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *Tile
			if tt.first != nil {
				before = tt.first.Clone()
			}
			got := tt.first.Merge(tt.later)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Merge = %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(tt.first, before) {
				t.Errorf("Merge modified its receiver: %+v", tt.first)
			}
			if tt.first != nil && len(got.Fields) > 0 && len(tt.first.Fields) > 0 {
				got.Fields[0].Value = "scribble"
				if tt.first.Fields[0].Value == "scribble" {
					t.Error("Merge result shares fields with its receiver")
				}
			}
		})
	}
}

// TestMergeMatchesApply checks Merge's contract: applying the merged update
// to a state has the same effect as applying the two updates in turn.
func TestMergeMatchesApply(t *testing.T) {
	start := TileState{Template: "FlipTile", Fields: map[string]string{"Count": "4", "Title": "Mail", "BackContent": "old"}}
	updates := []*Tile{
		{Template: "FlipTile", Fields: []Field{{Name: "Count", Value: "5"}, {Name: "BackTitle", Clear: true}}},
		{Fields: []Field{{Name: "Count", Clear: true}, {Name: "BackContent", Value: "new"}}},
		{Template: "FlipTile", Fields: []Field{{Name: "WideBackContent", Value: "wide"}, {Name: "Count", Value: "9"}}},
	}
	for i := range updates {
		for j := range updates {
			seq := TileState{Template: start.Template, Fields: maps.Clone(start.Fields)}
			if err := seq.Apply(updates[i]); err != nil {
				t.Fatal(err)
			}
			if err := seq.Apply(updates[j]); err != nil {
				t.Fatal(err)
			}
			merged := TileState{Template: start.Template, Fields: maps.Clone(start.Fields)}
			if err := merged.Apply(updates[i].Merge(updates[j])); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(seq, merged) {
				t.Errorf("updates %d then %d: sequential %+v, merged %+v", i, j, seq, merged)
			}
		}
	}
}

func TestTileMergeable(t *testing.T) {
	tests := []struct {
		a, b *Tile
		want bool
	}{
		{&Tile{ID: "/A"}, &Tile{ID: "/A"}, true},
		{&Tile{ID: "/A"}, &Tile{ID: "/B"}, false},
		{&Tile{Template: "FlipTile"}, &Tile{}, true},
		{&Tile{}, &Tile{Template: "FlipTile"}, true},
		{&Tile{Template: "IconicTile"}, &Tile{}, false},
		{&Tile{Template: "CycleTile"}, &Tile{Template: "FlipTile"}, false},
		{nil, &Tile{}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Mergeable(tt.b); got != tt.want {
			t.Errorf("%+v.Mergeable(%+v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestTileStateApply(t *testing.T) {
	type step struct {
		update  *Tile
		err     error
		want    TileState
		errText string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"WP7 updates merge field by field", []step{
			{update: &Tile{Fields: []Field{{Name: "Count", Value: "3"}, {Name: "Title", Value: "Inbox"}}},
				want: TileState{Fields: map[string]string{"Count": "3", "Title": "Inbox"}}},
			{update: &Tile{Fields: []Field{{Name: "Count", Clear: true}, {Name: "BackContent", Value: "hi"}}},
				want: TileState{Fields: map[string]string{"Title": "Inbox", "BackContent": "hi"}}},
			{update: &Tile{Fields: []Field{{Name: "Title"}}},
				want: TileState{Fields: map[string]string{"Title": "", "BackContent": "hi"}}},
		}},
		{"template fixed at first use", []step{
			{update: &Tile{Template: "IconicTile", Fields: []Field{{Name: "WideContent1", Value: "a"}}},
				want: TileState{Template: "IconicTile", Fields: map[string]string{"WideContent1": "a"}}},
			{update: &Tile{Template: "CycleTile", Fields: []Field{{Name: "CycleImage1", Value: "/c.png"}}}, err: ErrTemplateMismatch,
				errText: "Template type mismatch: the tile is IconicTile, the update is CycleTile",
				want:    TileState{Template: "IconicTile", Fields: map[string]string{"WideContent1": "a"}}},
			{update: &Tile{Fields: []Field{{Name: "Title", Value: "wp7"}}}, err: ErrTemplateMismatch,
				want: TileState{Template: "IconicTile", Fields: map[string]string{"WideContent1": "a"}}},
			{update: &Tile{Template: "IconicTile", Fields: []Field{{Name: "Count", Value: "1"}}},
				want: TileState{Template: "IconicTile", Fields: map[string]string{"WideContent1": "a", "Count": "1"}}},
		}},
		{"WP7 update to a FlipTile", []step{
			{update: &Tile{Template: "FlipTile", Fields: []Field{{Name: "WideBackContent", Value: "w"}}},
				want: TileState{Template: "FlipTile", Fields: map[string]string{"WideBackContent": "w"}}},
			{update: &Tile{Fields: []Field{{Name: "Count", Value: "2"}}},
				want: TileState{Template: "FlipTile", Fields: map[string]string{"WideBackContent": "w", "Count": "2"}}},
		}},
		{"FlipTile update upgrades a WP7 tile", []step{
			{update: &Tile{Fields: []Field{{Name: "Count", Value: "2"}}},
				want: TileState{Fields: map[string]string{"Count": "2"}}},
			{update: &Tile{Template: "FlipTile", Fields: []Field{{Name: "SmallBackgroundImage", Value: "/s.png"}}},
				want: TileState{Template: "FlipTile", Fields: map[string]string{"Count": "2", "SmallBackgroundImage": "/s.png"}}},
		}},
		{"used WP7 tile refuses Iconic", []step{
			{update: &Tile{Fields: []Field{{Name: "Count", Value: "2"}}}, want: TileState{Fields: map[string]string{"Count": "2"}}},
			{update: &Tile{Template: "IconicTile"}, err: ErrTemplateMismatch, want: TileState{Fields: map[string]string{"Count": "2"}}},
		}},
		{"field outside the template leaves state alone", []step{
			{update: &Tile{Template: "CycleTile", Fields: []Field{{Name: "Count", Value: "1"}, {Name: "BackContent", Value: "x"}}},
				err: ErrUnknownField, want: TileState{}},
		}},
		{"unknown template", []step{
			{update: &Tile{Template: "Nope"}, err: ErrUnknownTemplate, want: TileState{}},
		}},
		{"nil update", []step{{update: nil, want: TileState{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s TileState
			for i, st := range tt.steps {
				err := s.Apply(st.update)
				if st.err == nil && err != nil || st.err != nil && !errors.Is(err, st.err) {
					t.Fatalf("step %d: error %v, want %v", i, err, st.err)
				}
				if errors.Is(err, ErrBadRequest) {
					t.Errorf("step %d: Apply error %q wraps ErrBadRequest", i, err)
				}
				if st.errText != "" && (err == nil || err.Error() != "mpns: "+st.errText) {
					t.Errorf("step %d: error %q, want %q", i, err, "mpns: "+st.errText)
				}
				if len(s.Fields) == 0 && len(st.want.Fields) == 0 {
					s.Fields, st.want.Fields = nil, nil
				}
				if !reflect.DeepEqual(s, st.want) {
					t.Fatalf("step %d: state %+v, want %+v", i, s, st.want)
				}
			}
		})
	}
}

func TestRemoteImages(t *testing.T) {
	tile := &Tile{Template: "FlipTile", Fields: []Field{
		{Name: "BackgroundImage", Value: "http://img.example.com/a.png"},
		{Name: "Title", Value: "http://not.an.image/"},
		{Name: "SmallBackgroundImage", Value: "/Assets/s.png"},
		{Name: "WideBackgroundImage", Value: "HTTPS://img.example.com/w.png"},
		{Name: "BackBackgroundImage", Value: "isostore:/Shared/ShellContent/b.png"},
		{Name: "WideBackBackgroundImage", Clear: true},
	}}
	want := []string{"http://img.example.com/a.png", "HTTPS://img.example.com/w.png"}
	if got := tile.RemoteImages(); !reflect.DeepEqual(got, want) {
		t.Errorf("RemoteImages() = %q, want %q", got, want)
	}
	if got := (&Tile{}).RemoteImages(); got != nil {
		t.Errorf("empty tile RemoteImages() = %q", got)
	}
}

func TestImageAllowed(t *testing.T) {
	bound := []string{"http://img.example.com/tiles/", "https://cdn.example.net", "http://other.example.org:8080/a"}
	tests := []struct {
		url     string
		allowed []string
		want    bool
	}{
		{"/Assets/Tiles/tile.png", nil, true},
		{"Assets/tile.png", nil, true},
		{"tile.png", nil, true},
		{"isostore:/Shared/ShellContent/tile.jpg", nil, true},
		{"appdata:/Background.png", nil, true},
		{"ms-appx:///Assets/x.png", nil, true},
		{"http://img.example.com/tiles/a.png", nil, false},
		{"http://img.example.com/tiles/a.png", bound, true},
		{"http://IMG.example.com/tiles/sub/a.png", bound, true},
		{"http://img.example.com:80/tiles/a.png", bound, true},
		{"http://img.example.com/tiles", bound, true},
		{"http://img.example.com/other/a.png", bound, false},
		{"http://img.example.com/tilesX/a.png", bound, false},
		{"http://img.example.com/tiles/../private/a.png", bound, false},
		{"http://img.example.com/tiles/%2e%2e/private/a.png", bound, false},
		{"https://img.example.com/tiles/a.png", bound, false},
		{"http://img.example.com.evil.net/tiles/a.png", bound, false},
		{"http://img.example.com@evil.net/tiles/a.png", bound, false},
		{"https://cdn.example.net/anything/x.png", bound, true},
		{"https://cdn.example.net:443/x.png", bound, true},
		{"https://cdn.example.net:8443/x.png", bound, false},
		{"http://cdn.example.net/x.png", bound, false},
		{"http://other.example.org:8080/a/b.png", bound, true},
		{"http://other.example.org/a/b.png", bound, false},
		{"//img.example.com/tiles/a.png", bound, false},
		{"ftp://img.example.com/tiles/a.png", bound, false},
		{"file:///etc/passwd", bound, false},
		{"javascript:alert(1)", bound, false},
		{"", bound, false},
		{"http://", bound, false},
		{"http://img.example.com/tiles/a.png", []string{"not a url", "/relative"}, false},
	}
	for _, tt := range tests {
		if got := ImageAllowed(tt.url, tt.allowed); got != tt.want {
			t.Errorf("ImageAllowed(%q, %q) = %v, want %v", tt.url, tt.allowed, got, tt.want)
		}
	}
}
