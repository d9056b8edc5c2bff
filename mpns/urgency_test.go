package mpns

import "testing"

func TestParseUrgency(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Urgency
		ok   bool
	}{
		{"very-low", UrgencyVeryLow, true},
		{"low", UrgencyLow, true},
		{"normal", UrgencyNormal, true},
		{"high", UrgencyHigh, true},
		{"", 0, false},
		{"HIGH", 0, false},
		{"very low", 0, false},
		{"urgent", 0, false},
	} {
		got, ok := ParseUrgency(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseUrgency(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
	if Urgency(7).Valid() || !UrgencyNormal.Valid() {
		t.Error("Valid is wrong")
	}
}

func TestMinUrgency(t *testing.T) {
	for _, c := range []struct {
		power          string
		charging, wifi bool
		want           Urgency
	}{
		{"low", true, true, UrgencyHigh},
		{"critical", false, false, UrgencyHigh},
		{"normal", true, true, UrgencyVeryLow},
		{"normal", true, false, UrgencyLow},
		{"normal", false, true, UrgencyLow},
		{"normal", false, false, UrgencyNormal},
	} {
		if got := MinUrgency(c.power, c.charging, c.wifi); got != c.want {
			t.Errorf("MinUrgency(%q, charging %v, wifi %v) = %v, want %v", c.power, c.charging, c.wifi, got, c.want)
		}
	}
}
