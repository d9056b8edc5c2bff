module github.com/heraldpush/herald

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/gorilla/websocket v1.5.3
	github.com/kardianos/service v1.3.0
	github.com/mattn/go-sqlite3 v1.14.53
	golang.org/x/time v0.16.0
)

require golang.org/x/sys v0.34.0
