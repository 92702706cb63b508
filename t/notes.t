# What the module decided is in r->notes "conditional", so a LogFormat with
# %{conditional}n records it (t/logs/conditional_log, see extra.conf.in).

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Time::HiRes ();
use CondTest;

my $name = uniq_name('notes');
my $path = "/api/docs/$name";

create_doc($path);
my $tag = current_tag($path);
(my $version = $tag) =~ s/^"[0-9a-f]{16}-([0-9a-f]+)"$/$1/;

# [ request, expected note ]; a query string tells the requests apart in
# the log and is not part of the key.
my @rows = (
    [ [ GET => "$path?n=tag" ], qr/^tag \Q$version\E$/ ],
    [ [ GET => "$path?n=304", headers => [ 'If-None-Match' => $tag ] ],
      qr/^304$/ ],
    [ [ PUT => "$path?n=stale", headers => [ 'If-Match' => '"stale"' ],
        json => {} ], qr/^412-stale$/ ],
    [ [ PUT => "$path?n=malformed", headers => [ 'If-Match' => 'stale' ],
        json => {} ], qr/^412-malformed$/ ],
    [ [ PUT => "$path?n=exists", headers => [ 'If-None-Match' => '*' ],
        json => {} ], qr/^412-exists$/ ],
    [ [ PUT => "$path?n=commit", headers => [ 'If-Match' => $tag ],
        json => {} ], qr/^commit [0-9a-f]+$/ ],
    [ [ PUT => "/req/docs/$name?n=428", json => {} ], qr/^428$/ ],
    [ [ GET => "/raw/docs/$name?n=raw" ], qr/^-$/ ],
);

plan tests => scalar @rows + 1;

my %status;
for my $row (@rows) {
    my $res = request(@{ $row->[0] });
    $status{ $row->[0][1] } = $res->code;
}
my $new = current_tag($path);
(my $new_version = $new) =~ s/^"[0-9a-f]{16}-([0-9a-f]+)"$/$1/;

# mod_log_config writes after the response went out: give it a moment.
my %line;
for (1 .. 20) {
    open my $log, '<', logs_dir() . '/conditional_log' or die $!;
    while (<$log>) {
        chomp;
        my ($method, $url, $status, $note) = split / /, $_, 4;
        $line{$url} = [ $status, $note ] if $url =~ /\Q$name\E/;
    }
    last if keys %line >= @rows;
    Time::HiRes::sleep(0.1);
}

for my $row (@rows) {
    my $url = $row->[0][1];
    my $got = $line{$url} || [ 'missing', 'missing' ];
    like $got->[1], $row->[1],
        "$row->[0][0] $url ($status{$url}): note '$got->[1]'";
}
like $line{"$path?n=commit"}[1] // '', qr/^commit \Q$new_version\E$/,
    "the commit note names the version of the new tag $new";
