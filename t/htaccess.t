# The module switched on by an .htaccess file (AllowOverride FileInfo), for
# a static file and for a CGI; and refused where FileInfo is not allowed.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 13;

my $res;

# The control: the core's own ETag on a static file, module off.
$res = request(GET => '/static/doc.json');
is $res->code, 200, 'static file without the module';
ok !is_module_tag($res->header('ETag')), "... carries the core's ETag";

$res = request(GET => '/hta/doc.json');
is $res->code, 200, 'static file under .htaccess "Conditional On"';
my $tag = $res->header('ETag');
ok is_module_tag($tag), '... carries a module ETag'
    or diag 'ETag: ' . ($tag // 'none');
$res = request(GET => '/hta/doc.json', headers => [ 'If-None-Match' => $tag ]);
is $res->code, 304, '... and revalidates with it';

my $name = uniq_name('hta');
my $path = "/hta/api.cgi/docs/$name";
$res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
               json => { v => 1 });
is $res->code, 201, 'CGI under .htaccess: create-only PUT';
$tag = $res->header('ETag');
ok is_module_tag($tag), '... tagged by the module';
my $n = invocations($name);
$res = request(PUT => $path, headers => [ 'If-Match' => '"stale"' ],
               json => { v => 2 });
is $res->code, 412, '... a stale If-Match gets 412';
is invocations($name), $n, '... without running the CGI';
$res = request(PUT => $path, headers => [ 'If-Match' => $tag ],
               json => { v => 2 });
is $res->code, 200, '... If-Match current goes through';
$res = request(GET => $path, headers => [ 'If-None-Match' => $tag ]);
is $res->code, 200, '... and the old tag no longer revalidates';

$res = request(GET => '/hta-denied/doc.json');
is $res->code, 500, '"Conditional On" where FileInfo is not allowed: 500';
$res = request(GET => '/hta/doc.json');
is $res->code, 200, 'the server is fine afterwards';
