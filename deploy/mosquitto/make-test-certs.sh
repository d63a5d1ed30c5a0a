#!/usr/bin/env bash
# Make a private CA, a broker certificate and (optionally) client certificates with openssl.
#
#   deploy/mosquitto/make-test-certs.sh OUT_DIR [--name DNS]... [--client NAME]... [--days N]
#
# OUT_DIR gets ca.crt/ca.key, server.crt/server.key (subjectAltName: IP 127.0.0.1, DNS localhost and
# every --name, e.g. --name mosquitto --name mqtt.example.net) and NAME.crt/NAME.key per --client.
# The tests use it for a throw-away broker; an operator may use it for a small private installation
# (keep ca.key offline, give gateways and edge brokers only ca.crt, renew before --days runs out:
# 825 by default). Files are made only when missing, so running it again is safe.
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR [--name DNS]... [--client NAME]... [--days N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1; shift
names=(localhost); clients=(); days=825
while [ $# -gt 0 ]; do
  case $1 in
    --name) [ $# -ge 2 ] || usage; names+=("$2"); shift 2 ;;
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    *) usage ;;
  esac
done
command -v openssl >/dev/null || { echo "openssl is not installed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
cd "$out"
umask 077  # private keys readable by the owner only

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" -keyout ca.key -out ca.crt \
    -subj "/O=estate-gateway/CN=estate-gateway test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# sign NAME SUBJECT EXTENSIONS: NAME.key + NAME.crt signed by the CA
sign() {
  local name=$1 subject=$2 ext=$3
  [ -f "$name.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%b' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

san="IP:127.0.0.1,IP:::1"
for n in "${names[@]}"; do san="$san,DNS:$n"; done
sign server "/O=estate-gateway/CN=${names[-1]}" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=$san\n"
for c in "${clients[@]}"; do
  sign "$c" "/O=estate-gateway/CN=$c" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
done
# Mosquitto drops privileges to its own user: the broker's key must stay readable by it. Where this
# runs as root for a system broker, chown server.key to mosquitto afterwards.
chmod 644 ca.crt server.crt
echo "certificates in $(pwd): ca.crt server.crt server.key${clients:+ and ${clients[*]}}"
