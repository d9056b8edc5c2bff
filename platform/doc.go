// Package platform is everything in the device daemon that touches the
// operating system: where state lives (DefaultPaths, EnsureDir), the
// configuration file (LoadConfig), running and controlling the daemon as an
// OS service (Service, SystemdUnit), the local API socket (ListenSocket),
// showing toasts (NewDisplay) and reading the power level (PowerSource).
//
// Nothing here knows about notifications beyond the Toast it displays, so the
// daemon can be tested without an OS underneath and this package can be
// tested without a daemon.
package platform
