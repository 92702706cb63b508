package CondRace;

# No lost updates, for any backend: many clients run read-modify-write
# cycles on one document at the same time (t/concurrency.t for the CGI,
# t/fpm.t for PHP-FPM). lost_update_cases($api, $raw) runs TESTS tests:
#  - through $api (the module On) with If-Match, retrying on 412/409, every
#    successful write must be in the final document;
#  - against the same backend without the module ($raw), unconditional PUTs
#    must lose some, which shows the race is real and the test can fail;
#  - unconditional POSTs through $api are serialised by the module, so the
#    backend's own unlocked read-modify-write loses nothing, while the same
#    POSTs to $raw do lose entries.
# The backend must be the document API of t/cgi-bin/docs.cgi (or its PHP
# twin, t/php/docs.php): ?sleep= between its read and its write.

use strict;
use warnings;
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use Exporter 'import';
use JSON::PP ();
use POSIX ();
use Test::More ();
use Time::HiRes qw(time sleep);

use CondTest;

our @EXPORT = qw(lost_update_cases);

use constant TESTS => 11;

my $CLIENTS   = $ENV{COND_CLIENTS}   || 16;
my $INCREMENT = $ENV{COND_INCREMENTS} || 10;
my $APPENDS   = 5;
# Seconds for the whole conditional run: only a guard against a wedged
# server. A CGI starts perl for every request, and with the machine's
# cores shared by other busy processes the 160 writes and their retries
# have taken over 300 s; php-fpm needs about 10 s.
my $DEADLINE  = $ENV{COND_DEADLINE} || 900;

# The test functions of the calling .t file (Test::More's one builder).
BEGIN {
    no strict 'refs';
    *$_ = \&{"Test::More::$_"} for qw(ok is cmp_ok diag);
}

# Run $code->($i) in $CLIENTS children at once; each returns a hash of
# counts, which are summed up ("why" strings are collected in a list).
sub in_clients {
    my $code = shift;
    my @kids;
    for my $i (1 .. $CLIENTS) {
        pipe my $r, my $w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            srand($$ ^ time);
            my $counts = eval { $code->($i) } || { error => 1, why => "$@" };
            print $w JSON::PP->new->encode($counts);
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @kids, [ $pid, $r ];
    }
    my %sum;
    for my $k (@kids) {
        my ($pid, $r) = @$k;
        my $text = do { local $/; <$r> };
        waitpid $pid, 0;
        my $counts = eval { JSON::PP->new->decode($text // '') }
                     || { error => 1, why => 'no report from a client' };
        for (keys %$counts) {
            if ($_ eq 'why') { push @{ $sum{why} }, $counts->{why} }
            else             { $sum{$_} += $counts->{$_} }
        }
    }
    return \%sum;
}

sub counter_of {
    my $res = shift;
    my $doc = json_of($res);
    return ref $doc eq 'HASH' ? $doc->{data}{counter} : undef;
}

sub lost_update_cases {
    my ($api, $raw) = @_;

    # 1. Conditional increments through the module.
    my $name = uniq_name('counter');
    my $path = "$api/docs/$name";
    create_doc($path, { counter => 0 });

    my $t0 = time;
    my $sum = in_clients(sub {
        my %c = (ok => 0, retry412 => 0, retry409 => 0, untagged => 0);
        while ($c{ok} < $INCREMENT) {
            return { %c, error => 1, why => 'deadline' }
                if time - $t0 > $DEADLINE;
            my $res = request(GET => $path);
            my $tag = $res->header('ETag');
            my $value = counter_of($res);
            if ($res->code != 200 || !defined $value) {
                return { %c, error => 1, why => 'GET ' . $res->code };
            }
            if (!$tag) {            # a write was in flight: read again later
                $c{untagged}++;
                sleep 0.1 + rand 0.3;
                next;
            }
            $res = request(PUT => "$path?sleep=0.02",
                           headers => [ 'If-Match' => $tag ],
                           json => { counter => $value + 1 });
            if ($res->code == 200) {
                $c{ok}++;
            }
            elsif ($res->code == 412 || $res->code == 409) {
                $c{'retry' . $res->code}++;
                sleep rand 0.2;
            }
            else {
                return { %c, error => 1, why => 'PUT ' . $res->code };
            }
        }
        return \%c;
    });
    my $took = time - $t0;
    my $doc = stored_doc($name);
    diag sprintf "$api: %d clients, %d writes, %d x 412, %d x 409, "
        . "%d untagged reads, %.1f s", $CLIENTS, $sum->{ok} // 0,
        $sum->{retry412} // 0, $sum->{retry409} // 0, $sum->{untagged} // 0,
        $took;
    ok !$sum->{error}, "$api: every client finished without an unexpected answer"
        or diag join "\n", @{ $sum->{why} || [] };
    is $sum->{ok}, $CLIENTS * $INCREMENT, "$api: every client made all its increments";
    is $doc->{data}{counter}, $sum->{ok},
        "$api: the counter holds every successful write (no lost update)";
    is $doc->{rev}, 1 + $sum->{ok}, "$api: the backend's revision count agrees";

    # 2. The same cycle against the bare backend must lose updates.
    $name = uniq_name('raw');
    $path = "$raw/docs/$name";
    create_doc($path, { counter => 0 });
    $sum = in_clients(sub {
        my %c = (ok => 0);
        for (1 .. $INCREMENT) {
            my $value = counter_of(request(GET => $path));
            return { %c, error => 1, why => 'GET' } unless defined $value;
            my $res = request(PUT => "$path?sleep=0.05",
                              json => { counter => $value + 1 });
            return { %c, error => 1, why => 'PUT ' . $res->code }
                unless $res->code == 200;
            $c{ok}++;
        }
        return \%c;
    });
    $doc = stored_doc($name);
    my $lost = ($sum->{ok} // 0) - ($doc->{data}{counter} // 0);
    diag "$raw: $sum->{ok} writes, $lost lost";
    ok !$sum->{error}, "$raw: unprotected clients finished"
        or diag join "\n", @{ $sum->{why} || [] };
    is $sum->{ok}, $CLIENTS * $INCREMENT, '... all their writes answered 200';
    cmp_ok $lost, '>', 0, "$raw: ... and some updates were lost without the module";

    # 3. Unconditional appends: serialised by the module, racing without it.
    for my $case ([ $api, 0 ], [ $raw, 1 ]) {
        my ($prefix, $racy) = @$case;
        $name = uniq_name('append');
        $path = "$prefix/docs/$name";
        create_doc($path, { log => [] });
        $sum = in_clients(sub {
            my $i = shift;
            my %c = (ok => 0, busy => 0);
            for my $j (1 .. $APPENDS) {
                my $res = request(POST => "$path?sleep=0.02",
                                  json => { client => $i, n => $j });
                if ($res->code == 200)    { $c{ok}++ }
                elsif ($res->code == 409) { $c{busy}++ }
                else { return { %c, error => 1, why => 'POST ' . $res->code } }
            }
            return \%c;
        });
        my $entries = scalar @{ stored_data($name)->{log} || [] };
        diag "$prefix appends: $sum->{ok} answered 200, "
            . ($sum->{busy} // 0) . " x 409, $entries stored";
        if ($racy) {
            cmp_ok $entries, '<', $sum->{ok},
                "$prefix: concurrent appends lose entries without the module";
        }
        else {
            ok !$sum->{error}, "$prefix: appends finished"
                or diag join "\n", @{ $sum->{why} || [] };
            cmp_ok $sum->{ok}, '>', 0, "$prefix: some appends succeeded";
            is $entries, $sum->{ok},
                "$prefix: every acknowledged append is stored";
        }
    }
}

1;
