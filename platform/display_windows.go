//go:build windows

package platform

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"unicode/utf16"
)

// windowsDisplay shows toasts through Windows.UI.Notifications from
// PowerShell. The texts travel in environment variables and are escaped by
// PowerShell itself, so no toast text can change the script.
type windowsDisplay struct{ powershell string }

// windowsAppID is the AppUserModelID the toasts are shown under. Windows
// only shows toasts for a registered app id; PowerShell's is always
// registered.
const windowsAppID = `{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe`

func newWindowsDisplay() (Display, error) {
	p, err := exec.LookPath("powershell.exe")
	if err != nil {
		return nil, fmt.Errorf("%w: windows: %w", ErrDisplayUnavailable, err)
	}
	return windowsDisplay{powershell: p}, nil
}

func (windowsDisplay) Name() string { return "windows" }

const windowsScript = `$ErrorActionPreference = 'Stop'
[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications, ContentType = WindowsRuntime] | Out-Null
[Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument, ContentType = WindowsRuntime] | Out-Null
function X([string]$s) { [System.Security.SecurityElement]::Escape($s) }
$audio = ''
if ($env:HERALD_TOAST_SILENT -eq '1') { $audio = '<audio silent="true"/>' }
$xml = '<toast launch="' + (X $env:HERALD_TOAST_PARAM) + '"><visual><binding template="ToastGeneric">' +
  '<text>' + (X $env:HERALD_TOAST_TEXT1) + '</text>' +
  '<text>' + (X $env:HERALD_TOAST_TEXT2) + '</text>' +
  '<text placement="attribution">' + (X $env:HERALD_TOAST_TITLE) + '</text>' +
  '</binding></visual>' + $audio + '</toast>'
$doc = New-Object Windows.Data.Xml.Dom.XmlDocument
$doc.LoadXml($xml)
$toast = New-Object Windows.UI.Notifications.ToastNotification $doc
[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier($env:HERALD_TOAST_APPID).Show($toast)
`

func (d windowsDisplay) Show(ctx context.Context, t Toast) error {
	ctx, cancel := withShowTimeout(ctx)
	defer cancel()
	silent := "0"
	if t.Silent {
		silent = "1"
	}
	cmd := exec.CommandContext(ctx, d.powershell, "-NoProfile", "-NonInteractive", "-EncodedCommand", encodePowerShell(windowsScript))
	cmd.Env = append(os.Environ(),
		"HERALD_TOAST_TITLE="+toastTitle(t),
		"HERALD_TOAST_TEXT1="+t.Text1,
		"HERALD_TOAST_TEXT2="+t.Text2,
		"HERALD_TOAST_PARAM="+t.Param,
		"HERALD_TOAST_SILENT="+silent,
		"HERALD_TOAST_APPID="+windowsAppID,
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("windows: powershell toast: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// encodePowerShell encodes a script for -EncodedCommand (base64 of UTF-16LE).
func encodePowerShell(script string) string {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func newMacOSDisplay() (Display, error) {
	return nil, fmt.Errorf("%w: macos on windows", ErrDisplayUnavailable)
}
