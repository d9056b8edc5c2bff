package platform

import (
	"fmt"
	"strings"
)

// stateName is the directory name systemd creates under /var/lib and /run
// for the system unit; it matches DefaultPaths(false).
const stateName = "herald"

// SystemdUnit renders the unit file that Control("install") writes when the
// service manager is systemd: /etc/systemd/system/<name>.service for a
// system service, ~/.config/systemd/user/<name>.service for a user service.
//
// Both restart the daemon 5 s after a failure (not after a clean stop) and
// raise the open-file limit to 65536, since every app channel and API client
// holds a descriptor. The system unit starts once the network is online,
// runs as RunAs when given and lets systemd create /var/lib/herald and
// /run/herald (owned by that user); it is wanted by multi-user.target. The
// user unit is wanted by default.target, so it starts with the user's
// session.
func SystemdUnit(opts ServiceOptions) (string, error) {
	if err := opts.validate(); err != nil {
		return "", err
	}
	exe, err := opts.executable()
	if err != nil {
		return "", err
	}
	return renderSystemdUnit(opts, exe)
}

func renderSystemdUnit(opts ServiceOptions, exe string) (string, error) {
	for _, v := range append([]string{exe, opts.Description, opts.DisplayName}, opts.Arguments...) {
		if strings.ContainsAny(v, "\x00\r\n") {
			return "", fmt.Errorf("systemd unit: %w: %q has a line break", ErrUnsafeArgument, v)
		}
	}
	desc := opts.Description
	if desc == "" {
		desc = opts.DisplayName
	}
	if desc == "" {
		desc = opts.Name
	}

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("[Unit]")
	line("Description=%s", systemdSpecifiers(desc))
	line("ConditionFileIsExecutable=%s", systemdSpecifiers(exe))
	if !opts.User {
		line("After=network-online.target")
		line("Wants=network-online.target")
	}
	line("")
	line("[Service]")
	line("Type=simple")
	exec := []string{systemdWord(exe)}
	for _, a := range opts.Arguments {
		exec = append(exec, systemdWord(a))
	}
	line("ExecStart=%s", strings.Join(exec, " "))
	if !opts.User {
		if opts.RunAs != "" {
			line("User=%s", opts.RunAs)
		}
		line("StateDirectory=%s", stateName)
		line("StateDirectoryMode=0750")
		line("RuntimeDirectory=%s", stateName)
	}
	line("Restart=on-failure")
	line("RestartSec=5")
	line("LimitNOFILE=65536")
	line("")
	line("[Install]")
	if opts.User {
		line("WantedBy=default.target")
	} else {
		line("WantedBy=multi-user.target")
	}
	unit := b.String()
	// kardianos/service renders SystemdScript as a template; a unit without
	// "{{" passes through it unchanged, so SystemdUnit is exactly what
	// install writes.
	if strings.Contains(unit, "{{") {
		return "", fmt.Errorf("systemd unit: %w: \"{{\" cannot be written", ErrUnsafeArgument)
	}
	return unit, nil
}

// systemdWord quotes one ExecStart word when it has anything beyond the
// characters systemd takes literally.
func systemdWord(s string) string {
	if s != "" && strings.Trim(s, safeWordChars) == "" {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$")
	return `"` + r.Replace(s) + `"`
}

// systemdSpecifiers escapes systemd's %-specifiers in a free-text setting.
func systemdSpecifiers(s string) string {
	return strings.ReplaceAll(s, "%", "%%")
}

// safeWordChars are taken literally by systemd's command-line parser and by
// a POSIX shell.
const safeWordChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+"
