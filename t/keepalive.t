# Answers the module gives itself (412, 428) on a persistent connection:
# the request body it never passed to the backend must still be read and
# thrown away, or it would be parsed as the next request. Each body here is
# itself a request for a "smuggled" document, which must never be served.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use IO::Socket::INET ();
use CondTest;

my $name = uniq_name('ka');
my $smuggled = uniq_name('smuggled');
my $inner = "GET /api/docs/$smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

# [ label, first request line + headers, body framing, expected status ]
my @cases = (
    [ 'stale If-Match, Content-Length body', "PUT /api/docs/$name",
      [ 'If-Match: "stale"' ], 'length', 412 ],
    [ 'stale If-Match, chunked body', "PUT /api/docs/$name",
      [ 'If-Match: "stale"' ], 'chunked', 412 ],
    [ 'no precondition on /req/, Content-Length body', "PUT /req/docs/$name",
      [], 'length', 428 ],
    [ 'no precondition on /req/, chunked body', "POST /req/docs/$name",
      [], 'chunked', 428 ],
);

plan tests => 3 * @cases + 1;

create_doc("/api/docs/$name");
create_doc("/raw/docs/$smuggled");
my $before = invocations($smuggled);

my $hostport = Apache::TestRequest::hostport();
for my $c (@cases) {
    my ($label, $line, $headers, $framing, $status) = @$c;
    my $body = $framing eq 'length'
        ? $inner
        : sprintf("%x\r\n%s\r\n0\r\n\r\n", length $inner, $inner);
    my $req = join "\r\n", "$line HTTP/1.1", "Host: $hostport", @$headers,
        'Content-Type: application/json',
        ($framing eq 'length' ? 'Content-Length: ' . length $inner
                              : 'Transfer-Encoding: chunked'),
        '', '';
    $req .= $body;
    $req .= "GET /api/docs/$name HTTP/1.1\r\nHost: $hostport\r\n"
          . "Connection: close\r\n\r\n";

    my $sock = IO::Socket::INET->new(PeerAddr => $hostport, Timeout => 20)
        or die "connect $hostport: $!";
    print $sock $req;
    my $answer = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm 20;
    eval { 1 while sysread $sock, $answer, 65536, length $answer };
    alarm 0;
    close $sock;

    my @status = $answer =~ m{^HTTP/1\.1 (\d{3})}mg;
    is $status[0], $status, "$label: $status";
    is $status[1], 200, '... the next request on the connection: 200';
    is scalar @status, 2, '... and nothing else was answered'
        or diag "statuses: @status";
}
is invocations($smuggled), $before, 'the smuggled request never ran';
