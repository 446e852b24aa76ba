#!/usr/bin/perl
# Perl's Net::SMTP as a client for the interop tests (driven by test_server_peers.py).
#
#   perl net_smtp_client.pl PORT FROM TO MESSAGE-FILE [CAFILE [USER PASSWORD [MECHANISM]]]
#
# Connects to 127.0.0.1:PORT as client.example; with CAFILE it says STARTTLS and verifies
# the server's certificate against it; with USER and PASSWORD it authenticates (with
# MECHANISM, or the one Authen::SASL prefers among those offered). The message file is
# sent through datasend, which turns line ends into CRLF and doubles leading dots.
# Exits 0 once the server accepted the message; otherwise prints why and exits 1.
use strict;
use warnings;
use Net::SMTP;

my ($port, $from, $to, $file, $cafile, $user, $password, $mechanism) = @ARGV;
die "usage: net_smtp_client.pl PORT FROM TO FILE [CAFILE [USER PASSWORD [MECHANISM]]]\n"
    unless defined $file;

sub fail { print STDERR "net_smtp_client: @_\n"; exit 1; }

my $smtp = Net::SMTP->new('127.0.0.1', Port => $port, Hello => 'client.example',
                          Timeout => 20, Debug => 1)
    or fail("cannot connect: $@");
if (defined $cafile && $cafile ne '') {
    $smtp->starttls(SSL_ca_file => $cafile, SSL_verify_mode => 1)
        or fail('STARTTLS failed: ' . ($IO::Socket::SSL::SSL_ERROR // $smtp->message));
}
if (defined $user) {
    my $ok;
    if (defined $mechanism) {
        require Authen::SASL;
        my $sasl = Authen::SASL->new(mechanism => $mechanism,
                                     callback => { user => $user, pass => $password });
        $ok = $smtp->auth($sasl);
    } else {
        $ok = $smtp->auth($user, $password);
    }
    $ok or fail('AUTH failed: ' . $smtp->code . ' ' . $smtp->message);
}
open(my $in, '<:raw', $file) or fail("cannot read $file: $!");
my $content = do { local $/; <$in> };
close($in);
$smtp->mail($from) or fail('MAIL refused: ' . $smtp->code . ' ' . $smtp->message);
$smtp->to($to) or fail('RCPT refused: ' . $smtp->code . ' ' . $smtp->message);
$smtp->data() or fail('DATA refused: ' . $smtp->code . ' ' . $smtp->message);
$smtp->datasend($content) or fail('sending the content failed');
$smtp->dataend() or fail('the message was refused: ' . $smtp->code . ' ' . $smtp->message);
$smtp->quit();
exit 0;
