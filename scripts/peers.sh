#!/usr/bin/env bash
# Install and configure the real SMTP/LMTP peers the interoperability tests drive
# (tests/interop/). Debian 12, as root, loopback only. Idempotent: what is there is kept.
# Fails loudly: any step that fails stops the script with a message.
#
# Everything of ours lives under $PEERS (default /opt/smtpcore-peers); Postfix keeps its
# configuration in /etc/postfix (its only home), rewritten here every run.
# The tests read $PEERS too (same default), so export it for both or neither.
#
# Port map (see tests/interop/conftest.py): postfix 2525, exim 2526, OpenSMTPD 2527,
# aiosmtpd 2528, smtp-sink 2530, nodemailer's smtp-server 2532, Dovecot LMTP 2424; our
# servers behind Postfix 2540 (SMTP) and 2541 (LMTP).
set -euo pipefail

PEERS=${PEERS:-/opt/smtpcore-peers}
case $PEERS in /*) ;; *) echo "peers.sh: PEERS must be an absolute path, got '$PEERS'" >&2; exit 1 ;; esac
LOCK=/tmp/smtpcore-apt.lock

die() { echo "peers.sh: $*" >&2; exit 1; }
step() { echo "peers.sh: $*"; }
trap 'echo "peers.sh: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and creates users)"
[ -r /etc/debian_version ] || die "Debian only (apt-get, dpkg)"

# Another engineer may run apt at the same time: every apt-get call holds this lock.
apt() { flock "$LOCK" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0 "$@"; }

# No daemon may start from a package's maintainer script (there is no systemd here, and
# the stock instances would take ports 25/24).
if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
fi

# -- packages ---------------------------------------------------------------------------
updated=no
update_once() { if [ $updated = no ]; then apt update -qq; updated=yes; fi; }

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed'; }
# curl, s-nail and Perl's Net::SMTP (perl-modules; STARTTLS needs IO::Socket::SSL, AUTH
# needs Authen::SASL) are clients the interop tests drive against our servers.
for p in postfix dovecot-core dovecot-lmtpd swaks msmtp libnet-ssleay-perl \
         libio-socket-inet6-perl openssl libgnutls-dane0 libidn12 libdb5.3 libpcre2-8-0 \
         libnsl2 libevent-2.1-7 ca-certificates curl s-nail libio-socket-ssl-perl \
         libauthen-sasl-perl; do
    have_pkg "$p" || missing+=("$p")
done
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    update_once
    have_pkg postfix || echo "postfix postfix/main_mailer_type select No configuration" \
        | debconf-set-selections
    # postfix first: it creates the postfix user and /var/spool/postfix/private/.
    if ! have_pkg postfix; then apt install --no-install-recommends postfix; fi
    apt install --no-install-recommends "${missing[@]}"
fi
for c in postfix postconf smtp-sink smtp-source dovecot doveconf swaks msmtp openssl curl \
         s-nail perl; do
    command -v "$c" >/dev/null || die "$c is still missing after the install"
done
for m in Net::SMTP IO::Socket::SSL Authen::SASL; do
    perl -M"$m" -e1 2>/dev/null || die "the Perl module $m is still missing after the install"
done

mkdir -p "$PEERS"/{debs,tls,log}
chmod 755 "$PEERS"

# -- the certificate: self-signed, its own CA; SAN localhost, 127.0.0.1, ::1 ------------
if [ ! -s "$PEERS/tls/cert.pem" ] || [ ! -s "$PEERS/tls/key.pem" ]; then
    step "creating the test certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
        -keyout "$PEERS/tls/key.pem" -out "$PEERS/tls/cert.pem" 2>/dev/null
fi
chmod 600 "$PEERS/tls/key.pem"
chmod 644 "$PEERS/tls/cert.pem"

# -- Exim 4.96, extracted from exim4-daemon-light ----------------------------------------
if [ ! -x "$PEERS/exim/usr/sbin/exim4" ]; then
    step "fetching exim4-daemon-light"
    update_once
    (cd "$PEERS/debs" && flock "$LOCK" apt-get -q download exim4-daemon-light)
    dpkg -x "$(ls -1 "$PEERS"/debs/exim4-daemon-light_*.deb | tail -n1)" "$PEERS/exim"
fi
getent passwd Debian-exim >/dev/null ||
    adduser --quiet --system --group --allow-bad-names --no-create-home --home /nonexistent Debian-exim
mkdir -p "$PEERS"/exim-run/{spool,log,Maildir}
chown Debian-exim:Debian-exim "$PEERS"/exim-run/{spool,log,Maildir}
install -o Debian-exim -g Debian-exim -m 600 "$PEERS/tls/key.pem" "$PEERS/exim-run/key.pem"
# Quoted heredoc: $tls_in_cipher, $auth1... are Exim's; only $PEERS is ours (sed below).
cat >"$PEERS/exim-run/exim.conf" <<'EOF'
exim_path = $PEERS/exim/usr/sbin/exim4
primary_hostname = exim.example.test
spool_directory = $PEERS/exim-run/spool
log_file_path = $PEERS/exim-run/log/%slog
daemon_smtp_ports = 2526
local_interfaces = <; 127.0.0.1 ; ::1
host_lookup =
keep_environment =
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = $PEERS/tls/cert.pem
tls_privatekey = $PEERS/exim-run/key.pem
smtputf8_advertise_hosts = *
dsn_advertise_hosts = *
prdr_enable = true
chunking_advertise_hosts = *
message_size_limit = 10M
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = accept
acl_smtp_vrfy = accept
acl_smtp_expn = accept

begin acl
# "drop" answers like "deny", then closes the connection: a server that replies and
# hangs up, for the clients' handling of a reply that arrives just before the close.
acl_mail:
  drop    senders = dropped@example.org
          message = 550 5.7.1 sender dropped by the interop configuration
  accept
acl_rcpt:
  deny    local_parts = refused
          message = 550 5.1.1 refused by the interop configuration
  drop    local_parts = dropped
          message = 550 5.7.1 recipient dropped by the interop configuration
  accept

begin routers
everything:
  driver = accept
  transport = to_maildir

begin transports
to_maildir:
  driver = appendfile
  directory = $PEERS/exim-run/Maildir
  maildir_format
  create_directory
  user = Debian-exim

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and {{eq{$auth2}{test}}{eq{$auth3}{secret}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{test}}{eq{$auth2}{secret}}}}
  server_set_id = $auth1
EOF
sed -i "s|\$PEERS|$PEERS|g" "$PEERS/exim-run/exim.conf"
"$PEERS/exim/usr/sbin/exim4" -C "$PEERS/exim-run/exim.conf" -bV >/dev/null ||
    die "exim rejects $PEERS/exim-run/exim.conf"

# -- OpenSMTPD 7.4 from bookworm-backports (6.8 fails STARTTLS with OpenSSL 3) ----------
if ! ls "$PEERS"/opensmtpd/usr/sbin/smtpd >/dev/null 2>&1; then
    step "fetching opensmtpd from bookworm-backports"
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        [ -r /etc/apt/sources.list.d/debian.sources ] || die "no debian.sources to copy a mirror from"
        awk 'BEGIN{RS="";ORS="\n\n"} NR==1{sub(/Suites:[^\n]*/,"Suites: bookworm-backports"); print}' \
            /etc/apt/sources.list.d/debian.sources >/etc/apt/sources.list.d/backports.sources
        updated=no
    fi
    update_once
    (cd "$PEERS/debs" && flock "$LOCK" apt-get -q download opensmtpd/bookworm-backports)
    dpkg -x "$(ls -1 "$PEERS"/debs/opensmtpd_7.4*.deb | tail -n1)" "$PEERS/opensmtpd"
fi
ln -sfn "$PEERS/opensmtpd/usr/libexec/opensmtpd" /usr/libexec/opensmtpd
for n in opensmtpd opensmtpq; do
    getent group $n >/dev/null || addgroup --quiet --system $n
    getent passwd $n >/dev/null || adduser --quiet --system --home /var/lib/opensmtpd/empty \
        --no-create-home --disabled-password --ingroup $n $n
done
mkdir -p /var/lib/opensmtpd/empty "$PEERS/opensmtpd-run/Maildir"
chown nobody:nogroup "$PEERS/opensmtpd-run/Maildir"
[ -s "$PEERS/opensmtpd-run/creds" ] ||
    echo "test $(openssl passwd -6 secret)" >"$PEERS/opensmtpd-run/creds"
chmod 640 "$PEERS/opensmtpd-run/creds"
chgrp opensmtpd "$PEERS/opensmtpd-run/creds"
cat >"$PEERS/opensmtpd-run/smtpd.conf" <<EOF
smtp max-message-size 10M
pki localhost cert "$PEERS/tls/cert.pem"
pki localhost key "$PEERS/tls/key.pem"
table creds file:$PEERS/opensmtpd-run/creds
listen on 127.0.0.1 port 2527 hostname osmtpd.example.test tls pki localhost auth-optional <creds>
action "deliver" maildir "$PEERS/opensmtpd-run/Maildir" virtual { "@" = nobody }
match from any for any rcpt-to "refused@example.test" reject
match from any for any action "deliver"
EOF
"$PEERS/opensmtpd/usr/sbin/smtpd" -n -f "$PEERS/opensmtpd-run/smtpd.conf" >/dev/null 2>&1 ||
    die "OpenSMTPD rejects $PEERS/opensmtpd-run/smtpd.conf"

# -- Dovecot: an auth instance for Postfix, an LMTP instance ----------------------------
mkdir -p "$PEERS/dovecot"
echo 'test:{PLAIN}secret' >"$PEERS/dovecot/users"
chmod 644 "$PEERS/dovecot/users"
cat >"$PEERS/dovecot/auth.conf" <<EOF
base_dir = /run/smtpcore-dovecot-auth
protocols =
ssl = no
log_path = $PEERS/log/dovecot-auth.log
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = $PEERS/dovecot/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
# LMTP mail: $PEERS/lmtp-mail/<domain>/<user>. "broken" is a file where its Maildir
# should be: delivery to broken@example.test fails with 451 (a per-recipient failure).
mkdir -p "$PEERS/lmtp-mail/example.test"
chown -R 65534:65534 "$PEERS/lmtp-mail"
[ -f "$PEERS/lmtp-mail/example.test/broken" ] || {
    rm -rf "$PEERS/lmtp-mail/example.test/broken"
    install -o 65534 -g 65534 -m 644 /dev/null "$PEERS/lmtp-mail/example.test/broken"
}
cat >"$PEERS/dovecot/lmtp.conf" <<EOF
base_dir = /run/smtpcore-dovecot-lmtp
protocols = lmtp
ssl = yes
ssl_cert = <$PEERS/tls/cert.pem
ssl_key = <$PEERS/tls/key.pem
log_path = $PEERS/log/dovecot-lmtp.log
mail_location = maildir:$PEERS/lmtp-mail/%d/%n
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$PEERS/lmtp-mail/%d/%n allow_all_users=yes
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = 2424
  }
}
EOF
doveconf -c "$PEERS/dovecot/auth.conf" -n >/dev/null || die "dovecot rejects auth.conf"
doveconf -c "$PEERS/dovecot/lmtp.conf" -n >/dev/null || die "dovecot rejects lmtp.conf"

# -- Postfix on 2525; relays relay-smtp.test / relay-lmtp.test to our servers -----------
mkdir -p "$PEERS/postfix-mail"
chown 65534:65534 "$PEERS/postfix-mail"
cat >"$PEERS/postfix-transport" <<EOF
relay-smtp.test smtp:[127.0.0.1]:2540
relay-lmtp.test lmtp:[127.0.0.1]:2541
EOF
cat >/etc/postfix/main.cf <<EOF
# Written by smtpcore's scripts/peers.sh: a loopback-only test instance.
compatibility_level = 3.6
myhostname = mx.example.test
mydomain = example.test
myorigin = example.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_peername_lookup = no
maillog_file_prefixes = /var, /dev/stdout, $PEERS/log
maillog_file = $PEERS/log/postfix.log
alias_maps =
alias_database =
# *@example.test -> one Maildir; relay-*.test -> our servers; everything else discarded.
virtual_mailbox_domains = example.test
virtual_mailbox_base = $PEERS/postfix-mail
virtual_mailbox_maps = static:sink/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
default_transport = discard
relay_transport = discard
relay_domains = relay-smtp.test relay-lmtp.test
transport_maps = texthash:$PEERS/postfix-transport
smtpd_recipient_restrictions = check_recipient_access inline:{refused@example.test=REJECT}
message_size_limit = 10485760
virtual_mailbox_limit = 0
mailbox_size_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtp_tls_security_level = none
lmtp_tls_security_level = none
disable_vrfy_command = no
smtpd_tls_cert_file = $PEERS/tls/cert.pem
smtpd_tls_key_file = $PEERS/tls/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_tls_auth_only = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
smtputf8_enable = yes
EOF
postconf -MX smtp/inet 2>/dev/null || true
postconf -M '127.0.0.1:2525/inet=127.0.0.1:2525 inet n - n - - smtpd'
postconf -M '[::1]:2525/inet=[::1]:2525 inet n - n - - smtpd'
postconf -F '*/*/chroot = n'
postfix check || die "postfix check failed"

# -- nodemailer and its smtp-server, from npm, into $PEERS/node --------------------------
# Both need Node.js 20 or newer (their "engines"); the machine's node is used as it is.
command -v node >/dev/null || die "node (Node.js >= 20) is missing: nodemailer needs it"
command -v npm >/dev/null || die "npm is missing: nodemailer and smtp-server come from npm"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old: nodemailer needs >= 20"
mkdir -p "$PEERS/node"
# Caret ranges: any later release of these majors speaks the SMTP the tests expect.
cat >"$PEERS/node/package.json" <<'EOF'
{
  "name": "smtpcore-interop-peers",
  "private": true,
  "description": "nodemailer (client) and smtp-server (server) for smtpcore's interop tests",
  "dependencies": {
    "nodemailer": "^10.6.0",
    "smtp-server": "^3.21.0"
  }
}
EOF
node_ok() { (cd "$PEERS/node" && node -e 'require("nodemailer"); require("smtp-server")') 2>/dev/null; }
if ! node_ok; then
    step "installing nodemailer and smtp-server from npm into $PEERS/node"
    (cd "$PEERS/node" && npm install --no-audit --no-fund --loglevel=error) ||
        die "npm install of nodemailer and smtp-server failed"
    node_ok || die "nodemailer or smtp-server does not load from $PEERS/node"
fi

# -- aiosmtpd and the rest come from the project's venv (pip: aiosmtpd) ------------------
step "ready in $PEERS"
