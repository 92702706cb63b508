# The life of one resource through writes: create-only PUT, updates,
# DELETE (after which no old tag ever matches again, even once the resource
# is re-created), writes the backend refuses, and a resource deleted behind
# the module's back.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Time::HiRes ();
use CondTest;

plan tests => 61;

my $name = uniq_name('life');
my $path = "/api/docs/$name";
my ($res, $n);

# Create-only.
$res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
               json => { title => 'first' });
is $res->code, 201, 'PUT If-None-Match: * on a new resource creates it';
my $t1 = $res->header('ETag');
ok is_module_tag($t1), 'the 201 carries a module ETag'
    or diag 'ETag: ' . ($t1 // 'none');
is current_tag($path), $t1, 'a GET returns the tag the PUT answered with';

$n = invocations($name);
$res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
               json => { title => 'second' });
is $res->code, 412, 'a second create-only PUT is refused';
is invocations($name), $n, '... without running the backend';
is stored_data($name)->{title}, 'first', '... and the first one stays';
is $res->header('ETag'), $t1, '... the 412 names the current tag';
ok problem_of($res), '... in a problem+json body';

# Update.
$res = request(PUT => $path, headers => [ 'If-Match' => $t1 ],
               json => { title => 'updated' });
is $res->code, 200, 'PUT If-Match current updates';
my $t2 = $res->header('ETag');
ok is_module_tag($t2) && $t2 ne $t1, '... and answers with a new tag';
$res = request(GET => $path, headers => [ 'If-None-Match' => $t1 ]);
is $res->code, 200, 'the old tag no longer gets a 304';
is $res->header('ETag'), $t2, '... the 200 carries the new tag';

# Delete.
$res = request(DELETE => $path, headers => [ 'If-Match' => $t2 ]);
is $res->code, 204, 'DELETE If-Match current deletes';
ok !defined $res->header('ETag'), '... and the 204 carries no ETag';
ok !defined stored_doc($name), '... the backend removed the document';

$n = invocations($name);
$res = request(GET => $path, headers => [ 'If-None-Match' => $t2 ]);
is $res->code, 404, 'after DELETE, If-None-Match with the last tag: 404';
is invocations($name), $n + 1, '... from the backend, not a 304';
for my $tag ($t2, $t1) {
    $n = invocations($name);
    $res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
                   json => { title => 'zombie' });
    is $res->code, 412, 'after DELETE, If-Match with an old tag: 412';
    is invocations($name), $n, '... without running the backend';
}
$res = request(PUT => $path, headers => [ 'If-Match' => '*' ],
               json => { title => 'zombie' });
is $res->code, 412, 'after DELETE, If-Match: * gets 412';

# Re-create: a new tag, and the old ones stay dead.
$res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
               json => { title => 'reborn' });
is $res->code, 201, 'create-only PUT after DELETE re-creates';
my $t3 = $res->header('ETag');
ok is_module_tag($t3) && $t3 ne $t1 && $t3 ne $t2,
    '... with a tag never used before';
$n = invocations($name);
$res = request(PUT => $path, headers => [ 'If-Match' => $t2 ],
               json => { title => 'zombie' });
is $res->code, 412, 'the pre-DELETE tag does not match the new resource';
is invocations($name), $n, '... and the backend did not run';
$res = request(GET => $path, headers => [ 'If-None-Match' => "$t1, $t2" ]);
is $res->code, 200, 'nor does it get a 304';

# The backend refuses a write (4xx): nothing changes, and the claim is
# released.
for my $case ([ PATCH => 409 ], [ POST => 400 ], [ PUT => 422 ]) {
    my ($method, $status) = @$case;
    $res = request($method => "$path?status=$status",
                   headers => [ 'If-Match' => $t3 ],
                   json => { title => 'refused' });
    is $res->code, $status, "$method answered $status by the backend";
    $res = request(GET => $path, headers => [ 'If-None-Match' => $t3 ]);
    is $res->code, 304, "... leaves the tag unchanged";
}

# A write the backend answers 5xx or 3xx may have changed something: the
# claim is released at once, but the version moves, so the old tag neither
# revalidates nor passes If-Match.
for my $case ([ PUT => 500 ], [ DELETE => 503 ], [ POST => 303 ]) {
    my ($method, $status) = @$case;
    # No body on the DELETE: the CGI does not read one, and mod_cgid may
    # then see the script's socket reset before its answer.
    $res = request($method => "$path?status=$status",
                   headers => [ 'If-Match' => $t3 ],
                   $method eq 'DELETE' ? () : (json => { title => 'unsure' }));
    is $res->code, $status, "$method answered $status by the backend";
    $res = request(GET => $path, headers => [ 'If-None-Match' => $t3 ]);
    is $res->code, 200, "... the old tag gets no 304";
    my $t = $res->header('ETag');
    ok is_module_tag($t) && $t ne $t3, '... the next 200 has a new tag'
        or diag "$t3 -> " . ($t // 'none');
    $t3 = $t;
}
my $t0 = Time::HiRes::time();
$res = request(PUT => $path, headers => [ 'If-Match' => $t3 ],
               json => { title => 'after refusals' });
is $res->code, 200, 'the next write with the current tag goes through';
cmp_ok Time::HiRes::time() - $t0, '<', 2.5,
    '... without waiting for a claim left behind';
my $t4 = $res->header('ETag');

# Writes without a precondition (ConditionalRequire is Off on /api/).
$res = request(PATCH => $path, json => { extra => 1 });
is $res->code, 200, 'PATCH without precondition';
my $t5 = $res->header('ETag');
ok is_module_tag($t5) && $t5 ne $t4, '... bumps the tag';
is_deeply stored_data($name), { title => 'after refusals', extra => 1 },
    '... and the backend merged the data';

my $log = uniq_name('log');
$res = request(POST => "/api/docs/$log", json => { entry => 1 });
is $res->code, 200, 'POST without precondition creates a log document';
my $l1 = $res->header('ETag');
ok is_module_tag($l1), '... with a module tag';
$res = request(POST => "/api/docs/$log", headers => [ 'If-Match' => $l1 ],
               json => { entry => 2 });
is $res->code, 200, 'POST If-Match current appends';
is_deeply stored_data($log)->{log}, [ { entry => 1 }, { entry => 2 } ],
    '... both entries are stored';
$res = request(POST => "/api/docs/$log", headers => [ 'If-Match' => $l1 ],
               json => { entry => 3 });
is $res->code, 412, 'POST If-Match stale is refused';
is scalar @{ stored_data($log)->{log} || [] }, 2, '... nothing appended';

# Deleted behind the module's back: the backend's 404 marks the key absent.
my $oob = uniq_name('oob');
create_doc("/api/docs/$oob");
my $to = current_tag("/api/docs/$oob");
request(DELETE => "/raw/docs/$oob");
$res = request(GET => "/api/docs/$oob");
is $res->code, 404, 'a document deleted out of band: GET 404';
$res = request(GET => "/api/docs/$oob", headers => [ 'If-None-Match' => $to ]);
is $res->code, 404, '... its old tag gets no 304 afterwards';
$n = invocations($oob);
$res = request(PUT => "/api/docs/$oob", headers => [ 'If-Match' => $to ],
               json => { v => 1 });
is $res->code, 412, '... and If-Match with it is refused';
is invocations($oob), $n, '... without running the backend';

# A 410 from the backend marks a known key absent as well.
my $gone = uniq_name('gone');
create_doc("/api/docs/$gone");
my $tg = current_tag("/api/docs/$gone");
$res = request(GET => "/api/docs/$gone?status=410");
is $res->code, 410, 'the backend answers a GET with 410';
$n = invocations($gone);
$res = request(PUT => "/api/docs/$gone", headers => [ 'If-Match' => $tg ],
               json => { v => 1 });
is $res->code, 412, '... after which If-Match with the old tag is refused';
is invocations($gone), $n, '... without running the backend';
$res = request(GET => "/api/docs/$gone");
ok is_module_tag($res->header('ETag')) && $res->header('ETag') ne $tg,
    '... and the next 200 has a new tag';
