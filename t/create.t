# Create-only on a key the store has never seen (issue 11, item 8): the
# backend may have the resource already (written before the module was
# switched on, or out of band). "If-None-Match: *" must then be refused
# with 412 and never overwrite; on a resource that really is new it goes
# through (201). Likewise "If-Match: *" succeeds on a resource the backend
# has even though the store never saw it, and fails on one it has not.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 2 * 10 + 4 + 5 + 3;

for my $base ('/api', '/papi') {
    # Written behind the module's back: /raw/ is the backend alone.
    my $name = uniq_name('old');
    create_doc("/raw/docs/$name", { owner => 'first' });

    my $res = request(PUT => "$base/docs/$name", json => { owner => 'second' },
                      headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 412, "$base: create-only on a document the backend has: 412";
    is stored_data($name)->{owner}, 'first', '... not overwritten';
    ok problem_of($res), '... problem+json';
    # and again, now that the module has looked
    $res = request(PUT => "$base/docs/$name", json => { owner => 'third' },
                   headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 412, '... and again: 412';
    is stored_data($name)->{owner}, 'first', '... still not overwritten';

    my $new = uniq_name('new');
    $res = request(PUT => "$base/docs/$new", json => { owner => 'me' },
                   headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 201, "$base: create-only on a new document: 201";
    is stored_data($new)->{owner}, 'me', '... stored';
    ok is_module_tag($res->header('ETag')), '... with a tag';

    # If-Match: * on what the backend has but the store never saw.
    my $other = uniq_name('im');
    create_doc("/raw/docs/$other", { v => 1 });
    $res = request(PUT => "$base/docs/$other", json => { v => 2 },
                   headers => [ 'If-Match' => '*' ]);
    is $res->code, 200, "$base: If-Match: * on a document the backend has";
    is stored_data($other)->{v}, 2, '... written';
}

# If-Match: * on nothing at all, and the backend is asked without a body.
{
    my $none = uniq_name('none');
    my $res = request(PUT => "/api/docs/$none", json => { v => 1 },
                      headers => [ 'If-Match' => '*' ]);
    is $res->code, 412, 'If-Match: * on a document nobody has: 412';
    is stored_doc($none), undef, '... nothing written';
    my $n = invocations($none);
    ok $n >= 1, '... the backend was asked whether it exists';
    $res = request(PUT => "/api/docs/$none", json => { v => 1 },
                   headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 201, '... and create-only then creates it';
}

# A backend that knows no HEAD (405): the module asks it with GET instead.
{
    my $old = uniq_name('nohead');
    create_doc("/raw/docs/$old", { owner => 'first' });
    my $res = request(PUT => "/hapi/docs/$old", json => { owner => 'second' },
                      headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 412, 'backend without HEAD: create-only on what it has: 412'
        or diag $res->code . ' ' . $res->content;
    is stored_data($old)->{owner}, 'first', '... not overwritten';
    my $new = uniq_name('nohead');
    $res = request(PUT => "/hapi/docs/$new", json => { owner => 'me' },
                   headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 201, '... on a new document: 201';
    is stored_data($new)->{owner}, 'me', '... stored';
    $res = request(PUT => "/hapi/docs/$old", json => { owner => 'third' },
                   headers => [ 'If-Match' => '*' ]);
    is $res->code, 200, '... If-Match: * on what it has goes on';
}

# A backend whose HEAD fails (500): whether the resource exists cannot be
# told, so the write is refused (503) and the module says why (COND00111).
{
    my $name = uniq_name('badhead');
    my $res = request(PUT => "/eapi/docs/$name", json => { owner => 'me' },
                      headers => [ 'If-None-Match' => '*' ]);
    is $res->code, 503, 'backend failing HEAD: create-only gets 503';
    is stored_doc($name), undef, '... nothing written';
    open my $log, '<', logs_dir() . '/error_log' or die "error_log: $!";
    ok scalar(grep { /COND00111: .*\Q$name\E.* 500/ } <$log>),
        '... logged as COND00111 with the path and the answer';
}
