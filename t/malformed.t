# Malformed and oversized validators (RFC 9110): an unparsable If-Match fails
# closed (412, backend not run), an unparsable If-None-Match or an invalid
# date is ignored, and nothing crashes or wedges the server.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

my $name = uniq_name('bad');
my $path = "/api/docs/$name";

sub bare { (my $t = shift) =~ s/"//g; $t }

# A 64 KiB list of well-formed tags that never matched anything here.
my $stale_list = join ', ', map { sprintf '"%016x-%x"', 0xdead, $_ } 1 .. 2900;
my $garbage    = 'x' x 65536;

# [ label, method, headers (given the current tag), status, backend runs ]
my @rows = (
    [ 'If-Match unquoted',               PUT =>
      sub { ('If-Match' => 'abc') }, 412, 0 ],
    [ 'If-Match current tag without quotes', PUT =>
      sub { ('If-Match' => bare($_[0])) }, 412, 0 ],
    [ 'If-Match unterminated quote',     PUT =>
      sub { ('If-Match' => '"abc') }, 412, 0 ],
    [ 'If-Match current tag, then junk', PUT =>
      sub { ('If-Match' => "$_[0] junk") }, 412, 0 ],
    [ 'If-Match "W/" alone',             PATCH =>
      sub { ('If-Match' => 'W/') }, 412, 0 ],
    [ 'If-Match 64 KiB of garbage',      PUT =>
      sub { ('If-Match' => $garbage) }, 412, 0 ],
    [ 'If-Match 64 KiB of stale tags',   PUT =>
      sub { ('If-Match' => $stale_list) }, 412, 0 ],
    [ 'If-None-Match garbage',           GET =>
      sub { ('If-None-Match' => 'abc') }, 200, 1 ],
    [ 'If-None-Match unterminated quote', GET =>
      sub { ('If-None-Match' => '"abc') }, 200, 1 ],
    [ 'If-None-Match 64 KiB of garbage', GET =>
      sub { ('If-None-Match' => $garbage) }, 200, 1 ],
    [ 'If-None-Match 64 KiB of stale tags', GET =>
      sub { ('If-None-Match' => $stale_list) }, 200, 1 ],
    [ 'If-None-Match 64 KiB of stale tags, then the current one', GET =>
      sub { ('If-None-Match' => "$stale_list, $_[0]") }, 304, 0 ],
    [ 'If-Modified-Since not a date',    GET =>
      sub { ('If-Modified-Since' => 'yesterday') }, 200, 1 ],
    [ 'If-Modified-Since impossible date', GET =>
      sub { ('If-Modified-Since' => 'Sun, 99 Foo 2024 99:99:99 GMT') },
      200, 1 ],
    [ 'If-Modified-Since two dates',     GET =>
      sub { ('If-Modified-Since' => 'Sun, 06 Nov 2044 08:49:37 GMT, '
                                  . 'Sun, 06 Nov 2044 08:49:37 GMT') },
      200, 1 ],
    [ 'If-Unmodified-Since not a date',  PUT =>
      sub { ('If-Unmodified-Since' => 'not a date') }, 200, 1 ],
    [ 'If-Match current, If-Unmodified-Since garbage', PUT =>
      sub { ('If-Match' => $_[0], 'If-Unmodified-Since' => 'garbage') },
      200, 1 ],
    [ 'If-Match as 50 header lines, the current tag last', PUT =>
      sub { ((map { ('If-Match' => qq{"old-$_"}) } 1 .. 49),
             'If-Match' => $_[0]) }, 200, 1 ],
    [ 'If-Match 64 KiB of stale tags, then the current one', PUT =>
      sub { ('If-Match' => "$stale_list, $_[0]") }, 200, 1 ],
);

plan tests => 3 * @rows + 3;

create_doc($path, { v => 0 });

for my $row (@rows) {
    my ($label, $method, $headers, $status, $runs) = @$row;
    my $tag = current_tag($path);
    my $n = invocations($name);
    my $res = request($method => $path, headers => [ $headers->($tag) ],
                      ($method eq 'GET' ? () : (json => { label => $label })));
    is $res->code, $status, "$label: $status"
        or diag substr($res->as_string, 0, 2000);
    is invocations($name), $n + $runs,
        '... backend ' . ($runs ? 'ran' : 'not run');
    my $health = request(GET => $path);
    is $health->code, 200, '... and the server still answers';
}

my $res = request(PUT => $path, headers => [ 'If-Match' => current_tag($path) ],
                  json => { v => 'last' });
is $res->code, 200, 'a normal write afterwards works';
is stored_data($name)->{v}, 'last', '... and is stored';

# No child crashed along the way.
open my $log, '<', logs_dir() . '/error_log' or die "error_log: $!";
my @crashes = grep { /exit signal|AH00052|Segmentation|stack smashing/ }
              <$log>;
is scalar @crashes, 0, 'no httpd child died' or diag @crashes;
