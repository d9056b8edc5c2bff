package platform

import (
	"errors"
	"strings"
	"testing"
)

// unitSettings parses a unit file into section → lines.
func unitSettings(t *testing.T, unit string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	section := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			section = l
		default:
			if section == "" {
				t.Fatalf("setting %q outside a section", l)
			}
			out[section] = append(out[section], l)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	base := ServiceOptions{
		Name:        "herald",
		Description: "Herald push notification daemon",
		Executable:  "/usr/bin/herald",
		Arguments:   []string{"run", "--data", "/var/lib/herald"},
	}
	withRunAs := base
	withRunAs.RunAs = "herald"
	user := base
	user.User = true
	user.Arguments = []string{"run"}

	common := map[string][]string{
		"[Unit]": {"Description=Herald push notification daemon", "ConditionFileIsExecutable=/usr/bin/herald"},
		"[Service]": {
			"Restart=on-failure",
			"RestartSec=5",
			"LimitNOFILE=65536",
		},
	}
	tests := []struct {
		name   string
		opts   ServiceOptions
		want   map[string][]string
		absent []string
	}{
		{
			name: "system",
			opts: base,
			want: map[string][]string{
				"[Unit]": {"After=network-online.target", "Wants=network-online.target"},
				"[Service]": {
					"ExecStart=/usr/bin/herald run --data /var/lib/herald",
					"StateDirectory=herald",
					"RuntimeDirectory=herald",
				},
				"[Install]": {"WantedBy=multi-user.target"},
			},
			absent: []string{"User=", "RestartSec=120", "Restart=always", "default.target"},
		},
		{
			name: "system with RunAs",
			opts: withRunAs,
			want: map[string][]string{
				"[Service]": {"User=herald", "StateDirectory=herald", "RuntimeDirectory=herald"},
				"[Install]": {"WantedBy=multi-user.target"},
			},
		},
		{
			name: "user",
			opts: user,
			want: map[string][]string{
				"[Service]": {"ExecStart=/usr/bin/herald run"},
				"[Install]": {"WantedBy=default.target"},
			},
			absent: []string{"User=", "network-online", "StateDirectory", "RuntimeDirectory", "multi-user.target"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			unit, err := SystemdUnit(tt.opts)
			if err != nil {
				t.Fatalf("SystemdUnit: %v", err)
			}
			got := unitSettings(t, unit)
			for _, want := range []map[string][]string{common, tt.want} {
				for section, lines := range want {
					for _, l := range lines {
						if !containsLine(got[section], l) {
							t.Errorf("%s lacks %q:\n%s", section, l, unit)
						}
					}
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(unit, a) {
					t.Errorf("unit contains %q:\n%s", a, unit)
				}
			}
			if strings.Contains(unit, "{{") {
				t.Errorf("unit has template actions left:\n%s", unit)
			}
		})
	}
}

func containsLine(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

func TestSystemdUnitQuoting(t *testing.T) {
	opts := ServiceOptions{
		Name:        "herald",
		Description: "100% push",
		Executable:  "/opt/my apps/herald",
		Arguments:   []string{"run", "--data", "/srv/a b", `say "hi"`, "$HOME", "50%", `back\slash`, ""},
	}
	unit, err := SystemdUnit(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Description=100%% push",
		`ExecStart="/opt/my apps/herald" run --data "/srv/a b" "say \"hi\"" "$$HOME" "50%%" "back\\slash" ""`,
	} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

func TestSystemdUnitErrors(t *testing.T) {
	ok := ServiceOptions{Name: "herald", Executable: "/usr/bin/herald"}
	tests := []struct {
		name    string
		mutate  func(*ServiceOptions)
		wantErr error
	}{
		{"no name", func(o *ServiceOptions) { o.Name = "" }, ErrInvalidServiceName},
		{"name with slash", func(o *ServiceOptions) { o.Name = "../herald" }, ErrInvalidServiceName},
		{"name with space", func(o *ServiceOptions) { o.Name = "her ald" }, ErrInvalidServiceName},
		{"RunAs for a user service", func(o *ServiceOptions) { o.User, o.RunAs = true, "herald" }, ErrRunAsUserService},
		{"RunAs with newline", func(o *ServiceOptions) { o.RunAs = "herald\nExecStartPre=/bin/sh" }, ErrInvalidRunAs},
		{"argument with newline", func(o *ServiceOptions) { o.Arguments = []string{"run\nUser=root"} }, ErrUnsafeArgument},
		{"description with newline", func(o *ServiceOptions) { o.Description = "a\nb" }, ErrUnsafeArgument},
		{"template action", func(o *ServiceOptions) { o.Arguments = []string{"{{Name}}"} }, ErrUnsafeArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mutate(&o)
			if _, err := SystemdUnit(o); !errors.Is(err, tt.wantErr) {
				t.Errorf("SystemdUnit = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSystemdUnitDefaultsExecutable(t *testing.T) {
	unit, err := SystemdUnit(ServiceOptions{Name: "herald"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(unit, "ExecStart=") || strings.Contains(unit, "ExecStart=\n") {
		t.Errorf("unit has no executable:\n%s", unit)
	}
}
