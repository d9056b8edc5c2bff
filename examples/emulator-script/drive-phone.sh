#!/bin/sh
# Drives one emulated phone through the start screen's HTTP API, as a test
# would: opens an app, sends a toast through the real MPNS endpoint, checks
# what the service answered at low power and with the link down, plays the
# app in the foreground to take a raw notification, pins a secondary tile
# and updates it. Needs curl, and herald unless HERALD_UI_URL is given.
#
#   herald emulate --devices 2 --ui 127.0.0.1:8793 &
#   examples/emulator-script/drive-phone.sh phone-0002
#
# HERALD_UI_URL is the start screen's address with its key, as
# `herald ui-url` prints it (http://127.0.0.1:8793/#key=...); by default the
# script asks `herald ui-url --device PHONE` (add HERALD_SOCKET=PATH for an
# emulator on another socket).
# Prints one line per step; exits 1 at the first step that fails.
set -eu

PHONE=${1:-phone-0001}
APP=${2:-scripted}
URL=${HERALD_UI_URL:-$(herald ui-url --device "$PHONE")}

# The start screen answers only who has its key: a program sends it as a
# bearer token (a browser page starts a session with it instead).
case $URL in
*'#key='*) KEY=${URL#*#key=} ;;
*) echo "FAIL: $URL carries no key (#key=...): use the address herald ui-url prints" >&2; exit 1 ;;
esac
UI=${URL%%[?#]*}
UI=${UI%/}

# call METHOD PATH [JSON]: one API call for the phone; prints the answer.
call() {
  if [ $# -ge 3 ]; then
    curl -sS --fail-with-body -H "Authorization: Bearer $KEY" -X "$1" -H 'Content-Type: application/json' --data "$3" "$UI/api/$2?device=$PHONE"
  else
    curl -sS --fail-with-body -H "Authorization: Bearer $KEY" -X "$1" "$UI/api/$2?device=$PHONE"
  fi
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# field NAME: the first "NAME":"value" in the JSON on stdin.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1; }

# compose JSON: sends a notification as a cloud service would and prints
# the service's X-NotificationStatus and X-DeviceConnectionStatus.
compose() {
  out=$(call POST compose "$1") || fail "compose $1: $out"
  n=$(printf '%s' "$out" | field X-Notificationstatus)
  d=$(printf '%s' "$out" | field X-Deviceconnectionstatus)
  echo "$n $d"
}

# eventually CMD...: retries CMD for up to 30 s (the phone's link changes
# asynchronously).
eventually() {
  i=0
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 150 ] || return 1
    sleep 0.2
  done
}

uri=$(call POST open "{\"app\":\"$APP\",\"toast\":true,\"tile\":true}" | field uri)
[ -n "$uri" ] || fail "opening $APP"
echo "open $APP $uri"

got=$(compose "{\"app\":\"$APP\",\"kind\":\"toast\",\"text1\":\"Hello\",\"text2\":\"from a script\"}")
[ "$got" = "Received Connected" ] || fail "toast: $got"
echo "toast $got"

call POST power '{"level":"low"}' >/dev/null || fail "power low"
got=$(compose "{\"app\":\"$APP\",\"kind\":\"toast\",\"text1\":\"Quiet\"}")
[ "${got%% *}" = "Suppressed" ] || fail "toast at low power: $got"
echo "toast at low power $got"
call POST power '{"level":"normal"}' >/dev/null || fail "power normal"

call POST connectivity '{"online":false}' >/dev/null || fail "dropping the link"
# The service learns the link is gone a moment later: probe it with raw
# notifications (the app is not running, so the phone drops them) rather
# than toasts, which it would show.
away() { [ "$(compose "{\"app\":\"$APP\",\"kind\":\"raw\",\"body\":\"probe\"}")" = "Received TempDisconnected" ]; }
eventually away || fail "the service never saw the link drop"
got=$(compose "{\"app\":\"$APP\",\"kind\":\"toast\",\"text1\":\"Later\"}")
[ "$got" = "Received TempDisconnected" ] || fail "toast while away: $got"
echo "toast while away Received TempDisconnected"
call POST connectivity '{"online":true}' >/dev/null || fail "bringing the link back"
connected() { call GET state | grep -q '"connected":true'; }
eventually connected || fail "the link did not come back"
echo "link back"

call POST foreground "{\"app\":\"$APP\"}" >/dev/null || fail "foreground"
got=$(compose "{\"app\":\"$APP\",\"kind\":\"raw\",\"body\":\"sync now\"}")
[ "$got" = "Received Connected" ] || fail "raw: $got"
taken() { call GET state | grep -q '"body":"sync now","delivered":true,"outcome":"app"'; }
eventually taken || fail "the raw notification did not reach the app"
echo "raw taken by the app"
call POST foreground '{"app":""}' >/dev/null || fail "back to the start screen"

call POST pin "{\"app\":\"$APP\",\"tile_id\":\"/Item.xaml?id=1\"}" >/dev/null || fail "pin"
got=$(compose "{\"app\":\"$APP\",\"kind\":\"tile\",\"tile_id\":\"/Item.xaml?id=1\",\"template\":\"FlipTile\",\"fields\":{\"Title\":\"Item 1\",\"Count\":\"3\"}}")
[ "$got" = "Received Connected" ] || fail "tile: $got"
tiled() { call GET state | grep -q '"Title":"Item 1"'; }
eventually tiled || fail "the tile did not update"
echo "secondary tile updated"
echo "ok"
