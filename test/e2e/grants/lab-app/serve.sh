#!/bin/sh
# One HTTP exchange per connection (busybox nc -ll -e): a page, an asset, a redirect, JSON, and a WebSocket.
read -r method target version
target=$(printf '%s' "$target" | tr -d '\r')
key=''
cookie=''
forwarded=''
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  name=$(printf '%s' "${line%%:*}" | tr 'A-Z' 'a-z')
  value="${line#*: }"
  case "$name" in
    sec-websocket-key) key="$value" ;;
    cookie) cookie="$value" ;;
    x-forwarded-host) forwarded="$value" ;;
  esac
done

answer() { # status, type, body, [location]
  printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n' "$1" "$2" "${#3}"
  [ -n "$4" ] && printf 'Location: %s\r\n' "$4"
  printf '\r\n%s' "$3"
}

case "$target" in
  /)
    answer '200 OK' 'text/html' '<!doctype html><html><head><title>lab app</title><script src="/static/app.js"></script></head><body><h1>lab app</h1></body></html>' ;;
  /static/app.js)
    answer '200 OK' 'text/javascript' "$(cat /app.js)" ;;
  /old)
    answer '302 Found' 'text/plain' 'moved' '/new' ;;
  /new)
    answer '200 OK' 'text/plain' 'redirected ok' ;;
  /api/data)
    answer '200 OK' 'application/json' "{\"ok\":true,\"cookie\":\"$cookie\",\"forwarded_host\":\"$forwarded\"}" ;;
  /ws)
    accept=$(printf '%s' "${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
    printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n' "$accept"
    # One text frame, "hello from ws" (13 bytes), then hold the connection until the client goes.
    printf '\201\015hello from ws'
    cat >/dev/null ;;
  *)
    answer '404 Not Found' 'text/plain' "app: nothing at $target" ;;
esac
