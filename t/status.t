# The status table of the product contract (SPEC.md, "Behaviour"), row by
# row, for the CGI API (/api/) and the same API behind mod_proxy (/papi/).
# Every row checks the status, whether the backend ran (the CGI's own
# invocation counter), and the ETag the response carries.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;
use HTTP::Date ();

# state:   present  written twice through the module ({old} and {tag} known,
#                   {lm} once the last write is a second old)
#          unseen   created behind the module's back (via /raw/)
#          missing  exists nowhere
# etag:    current  the tag the resource had before the request
#          new      a fresh module tag, also what a following GET returns
#          none     no ETag header
#          skip     not checked
my @rows = (
    # reads
    [ 'GET, no validators',              'present', GET  => sub { () },
      200, 1, 'current' ],
    [ 'GET of a key the store never saw', 'unseen', GET  => sub { () },
      200, 1, 'new' ],
    [ 'GET, If-None-Match current',      'present', GET =>
      sub { ('If-None-Match' => $_[0]{tag}) }, 304, 0, 'current' ],
    [ 'GET, If-None-Match weak current', 'present', GET =>
      sub { ('If-None-Match' => "W/$_[0]{tag}") }, 304, 0, 'current' ],
    [ 'GET, If-None-Match list with current', 'present', GET =>
      sub { ('If-None-Match' => qq{"nope", $_[0]{old}, $_[0]{tag}}) },
      304, 0, 'current' ],
    [ 'GET, If-None-Match *',            'present', GET =>
      sub { ('If-None-Match' => '*') }, 304, 0, 'current' ],
    [ 'GET, If-None-Match stale',        'present', GET =>
      sub { ('If-None-Match' => $_[0]{old}) }, 200, 1, 'current' ],
    [ 'HEAD, no validators',             'present', HEAD => sub { () },
      200, 1, 'current' ],
    [ 'HEAD, If-None-Match current',     'present', HEAD =>
      sub { ('If-None-Match' => $_[0]{tag}) }, 304, 0, 'current' ],
    [ 'GET, If-Modified-Since = Last-Modified', 'present', GET =>
      sub { ('If-Modified-Since' => $_[0]{lm}) }, 304, 0, 'current' ],
    [ 'GET, If-Modified-Since a day early', 'present', GET =>
      sub { ('If-Modified-Since' => http_date($_[0]{lm_time} - 86400)) },
      200, 1, 'current' ],
    [ 'GET, If-Modified-Since matches but If-None-Match stale', 'present',
      GET => sub { ('If-Modified-Since' => $_[0]{lm},
                    'If-None-Match' => $_[0]{old}) }, 200, 1, 'current' ],

    [ 'GET, If-Match current',           'present', GET =>
      sub { ('If-Match' => $_[0]{tag}) }, 200, 1, 'current' ],
    [ 'GET, If-Match stale',             'present', GET =>
      sub { ('If-Match' => $_[0]{old}) }, 412, 0, 'current', 'problem' ],
    [ 'GET, If-Unmodified-Since before Last-Modified', 'present', GET =>
      sub { ('If-Unmodified-Since' => http_date($_[0]{lm_time} - 86400)) },
      412, 0, 'current', 'problem' ],

    # writes, If-Match
    [ 'PUT, If-Match current',           'present', PUT =>
      sub { ('If-Match' => $_[0]{tag}) }, 200, 1, 'new' ],
    [ 'PUT, If-Match stale',             'present', PUT =>
      sub { ('If-Match' => $_[0]{old}) }, 412, 0, 'current', 'problem' ],
    [ 'PUT, If-Match weak current',      'present', PUT =>
      sub { ('If-Match' => "W/$_[0]{tag}") }, 412, 0, 'current', 'problem' ],
    [ 'PUT, If-Match list with current', 'present', PUT =>
      sub { ('If-Match' => qq{$_[0]{old}, $_[0]{tag}}) }, 200, 1, 'new' ],
    [ 'PUT, If-Match *, present',        'present', PUT =>
      sub { ('If-Match' => '*') }, 200, 1, 'new' ],
    # a key the store never saw: the backend is asked first (a HEAD)
    [ 'PUT, If-Match *, missing',        'missing', PUT =>
      sub { ('If-Match' => '*') }, 412, 1, 'none', 'problem' ],
    [ 'PUT, If-Match *, unseen',         'unseen', PUT =>
      sub { ('If-Match' => '*') }, 200, 2, 'new' ],
    [ 'PUT, If-Match a tag, missing',    'missing', PUT =>
      sub { ('If-Match' => '"0123456789abcdef-1"') }, 412, 0, 'none',
      'problem' ],
    [ 'PUT, If-Match the tag of another document', 'present', PUT =>
      sub { ('If-Match' => $_[0]{other}) }, 412, 0, 'current', 'problem' ],
    [ 'PATCH, If-Match current',         'present', PATCH =>
      sub { ('If-Match' => $_[0]{tag}) }, 200, 1, 'new' ],
    [ 'PATCH, If-Match stale',           'present', PATCH =>
      sub { ('If-Match' => $_[0]{old}) }, 412, 0, 'current', 'problem' ],
    [ 'POST, If-Match current',          'present', POST =>
      sub { ('If-Match' => $_[0]{tag}) }, 200, 1, 'new' ],
    [ 'POST, If-Match stale',            'present', POST =>
      sub { ('If-Match' => $_[0]{old}) }, 412, 0, 'current', 'problem' ],
    [ 'DELETE, If-Match current',        'present', DELETE =>
      sub { ('If-Match' => $_[0]{tag}) }, 204, 1, 'none' ],
    [ 'DELETE, If-Match stale',          'present', DELETE =>
      sub { ('If-Match' => $_[0]{old}) }, 412, 0, 'current', 'problem' ],

    # writes, dates
    [ 'PUT, If-Unmodified-Since before Last-Modified', 'present', PUT =>
      sub { ('If-Unmodified-Since' => http_date($_[0]{lm_time} - 86400)) },
      412, 0, 'current', 'problem' ],
    [ 'PUT, If-Unmodified-Since = Last-Modified', 'present', PUT =>
      sub { ('If-Unmodified-Since' => $_[0]{lm}) }, 200, 1, 'new' ],
    [ 'PUT, If-Match current beats an early If-Unmodified-Since', 'present',
      PUT => sub { ('If-Match' => $_[0]{tag},
                    'If-Unmodified-Since' => http_date(800000000)) },
      200, 1, 'new' ],

    # writes, If-None-Match and none
    [ 'PUT, If-None-Match *, present',   'present', PUT =>
      sub { ('If-None-Match' => '*') }, 412, 0, 'current', 'problem' ],
    [ 'PUT, If-None-Match *, missing',   'missing', PUT =>
      sub { ('If-None-Match' => '*') }, 201, 2, 'new' ],
    [ 'PUT, If-None-Match *, unseen',    'unseen', PUT =>
      sub { ('If-None-Match' => '*') }, 412, 1, 'none', 'problem' ],
    [ 'PUT, If-None-Match current',      'present', PUT =>
      sub { ('If-None-Match' => $_[0]{tag}) }, 412, 0, 'current',
      'problem' ],
    [ 'PUT, If-None-Match weak current', 'present', PUT =>
      sub { ('If-None-Match' => "W/$_[0]{tag}") }, 412, 0, 'current',
      'problem' ],
    [ 'PUT, If-None-Match stale',        'present', PUT =>
      sub { ('If-None-Match' => $_[0]{old}) }, 200, 1, 'new' ],
    [ 'PUT, If-Match current and If-None-Match *', 'present', PUT =>
      sub { ('If-Match' => $_[0]{tag}, 'If-None-Match' => '*') },
      412, 0, 'current', 'problem' ],
    [ 'DELETE, If-None-Match *, present', 'present', DELETE =>
      sub { ('If-None-Match' => '*') }, 412, 0, 'current', 'problem' ],
    [ 'PUT, no precondition',            'present', PUT => sub { () },
      200, 1, 'new' ],

    # backend says no
    [ 'PUT, If-Match current, backend answers 500', 'present', PUT =>
      sub { ('If-Match' => $_[0]{tag}) }, 500, 1, 'skip', 'invalidated',
      'status=500' ],
    [ 'PATCH, If-Match current, backend answers 409', 'present', PATCH =>
      sub { ('If-Match' => $_[0]{tag}) }, 409, 1, 'skip', 'unchanged',
      'status=409' ],
);

my @prefixes = qw(/api /papi);

sub row_tests {
    my ($status, $ran, $etag, $extra) = @{ $_[0] }[4 .. 7];
    return 2 + ($etag ne 'skip') + ($etag eq 'new')
        + (defined $extra ? 1 : 0);
}

my $per_prefix = 0;
$per_prefix += row_tests($_) for @rows;
plan tests => $per_prefix * @prefixes;

for my $prefix (@prefixes) {
    my @cases = map { { row => $_, name => uniq_name('status') } } @rows;

    # Set everything up first, then wait a second once, so that every
    # present document has a Last-Modified to test against.
    my $other = uniq_name('other');
    create_doc("$prefix/docs/$other");
    my $other_tag = current_tag("$prefix/docs/$other");

    for my $c (@cases) {
        my $state = $c->{row}[1];
        my $path = "$prefix/docs/$c->{name}";
        if ($state eq 'present') {
            create_doc($path, { v => 1 });
            $c->{old} = current_tag($path);
            create_doc($path, { v => 2 });
        }
        elsif ($state eq 'unseen') {
            create_doc("/raw/docs/$c->{name}", { v => 1 });
        }
    }
    wait_next_second();
    for my $c (@cases) {
        next unless $c->{row}[1] eq 'present';
        my $res = request(GET => "$prefix/docs/$c->{name}");
        $c->{tag}   = $res->header('ETag');
        $c->{lm}    = $res->header('Last-Modified');
        $c->{lm_time} = HTTP::Date::str2time($c->{lm} || '') || time;
        $c->{lm}  ||= http_date(time);
        $c->{other} = $other_tag;
    }

    for my $c (@cases) {
        my ($label, $state, $method, $headers, $status, $ran, $etag,
            $extra, $query) = @{ $c->{row} };
        my $name = $c->{name};
        my $path = "$prefix/docs/$name" . ($query ? "?$query" : '');
        my $what = "$prefix: $label";
        my @body = $method =~ /^(PUT|PATCH|POST)$/
                   ? (json => { v => 3, row => $label }) : ();

        my $before = invocations($name);
        my $res = request($method => $path, headers => [ $headers->($c) ],
                          @body);
        my $ran_now = invocations($name) - $before;

        is $res->code, $status, "$what: status"
            or diag $res->as_string;
        is $ran_now, $ran, "$what: backend " . ($ran ? 'ran' : 'not run');

        my $got = $res->header('ETag');
        if ($etag eq 'current') {
            ok is_module_tag($got) && $got eq ($c->{tag} // ''),
               "$what: ETag is the current tag"
                or diag 'ETag: ' . ($got // 'none')
                        . ', current: ' . ($c->{tag} // 'none');
        }
        elsif ($etag eq 'none') {
            ok !defined $got, "$what: no ETag"
                or diag "ETag: $got";
        }
        elsif ($etag eq 'new') {
            ok is_module_tag($got)
               && $got ne ($c->{tag} // '') && $got ne ($c->{old} // ''),
               "$what: a new module ETag"
                or diag 'ETag: ' . ($got // 'none');
            is current_tag("$prefix/docs/$name"), $got,
               "$what: a GET now returns the new tag";
        }

        if (defined $extra && $extra eq 'problem') {
            my $p = problem_of($res);
            ok $p && $p->{status} == $status
               && ($p->{type} // '') =~ /^urn:conditional:/
               && length($p->{title} // ''),
               "$what: application/problem+json body"
                or diag $res->as_string;
        }
        elsif (defined $extra && $extra eq 'unchanged') {
            my $again = request(GET => "$prefix/docs/$name",
                                headers => [ 'If-None-Match' => $c->{tag} ]);
            is $again->code, 304, "$what: the old tag still matches";
        }
        elsif (defined $extra && $extra eq 'invalidated') {
            my $again = request(GET => "$prefix/docs/$name",
                                headers => [ 'If-None-Match' => $c->{tag} ]);
            is $again->code, 200, "$what: the old tag no longer matches";
        }
    }
}
