# Compression after the module: mod_deflate (/gz/) and mod_brotli (/br/)
# add "-gzip" / "-br" to a compressed response's ETag (AddSuffix, their
# default), and a client echoing that tag must still get its 304 (httpd bug
# 45023 must not bite). Both are set with SetOutputFilter here, so they run
# on the module's 304 too: it must go out with the ETag and Vary of its 200
# (issue 11, item 5), not a suffix or an Accept-Encoding added a second time.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

plan tests => 14 + 8;

# Every token of every Vary line, sorted: what a cache reads.
sub vary_of {
    my $res = shift;
    return join ',', sort map { lc } map { split /\s*,\s*/ } $res->header('Vary');
}

my $name = uniq_name('gz');
my $path = "/gz/docs/$name";
my $n;
my $gzip = [ 'Accept-Encoding' => 'gzip' ];

# Large and repetitive: certainly worth compressing.
create_doc($path, { text => 'all work and no play ' x 200 });

my $res = request(GET => $path);
is $res->code, 200, 'identity GET';
my $plain = $res->header('ETag');
ok is_module_tag($plain), '... carries a module tag'
    or diag 'ETag: ' . ($plain // 'none');

$res = request(GET => $path, headers => $gzip);
is $res->code, 200, 'GET with Accept-Encoding: gzip';
is $res->header('Content-Encoding'), 'gzip', '... is compressed';
my $gz = $res->header('ETag') // '';
my $gzvary = vary_of($res);
like $gz, qr/^"[0-9a-f]{16}-[0-9a-f]+-gzip"$/, '... tagged with a -gzip suffix';
(my $base = $gz) =~ s/-gzip"$/"/;
is $base, $plain, '... on the same version';
like $res->decoded_content, qr/all work and no play/, '... body is intact';

$n = invocations($name);
$res = request(GET => $path, headers => [ @$gzip, 'If-None-Match' => $gz ]);
is $res->code, 304, 'the -gzip tag echoed back: 304';
is invocations($name), $n, '... without running the backend';
is $res->header('ETag'), $gz, '... with the ETag of its 200';
is vary_of($res), $gzvary, '... and the Vary of its 200';
$res = request(GET => $path, headers => [ 'If-None-Match' => $plain ]);
is $res->code, 304, 'the plain tag, identity: 304';

$res = request(PUT => $path, headers => [ 'If-Match' => $plain ],
               json => { text => 'changed ' x 200 });
is $res->code, 200, 'a write with the plain tag';
$res = request(GET => $path, headers => [ @$gzip, 'If-None-Match' => $gz ]);
is $res->code, 200, '... and the old -gzip tag no longer revalidates';

# mod_brotli, the same way.
$name = uniq_name('br');
$path = "/br/docs/$name";
create_doc($path, { text => 'all work and no play ' x 200 });
$plain = current_tag($path);
$res = request(GET => $path, headers => [ 'Accept-Encoding' => 'br' ]);
is $res->code, 200, 'GET with Accept-Encoding: br';
is $res->header('Content-Encoding'), 'br', '... is compressed';
my $br = $res->header('ETag') // '';
my $brvary = vary_of($res);
(my $brbase = $br) =~ s/-br"$/"/;
ok $br =~ /-br"$/ && $brbase eq $plain, '... tagged with a -br suffix'
    or diag "ETag: $br, identity: $plain";
$n = invocations($name);
$res = request(GET => $path,
               headers => [ 'Accept-Encoding' => 'br', 'If-None-Match' => $br ]);
is $res->code, 304, 'the -br tag echoed back: 304';
is invocations($name), $n, '... without running the backend';
is $res->header('ETag'), $br, '... with the ETag of its 200';
is vary_of($res), $brvary, '... and the Vary of its 200';
request(PATCH => $path, headers => [ 'If-Match' => $plain ],
        json => { more => 1 });
$res = request(GET => $path,
               headers => [ 'Accept-Encoding' => 'br', 'If-None-Match' => $br ]);
is $res->code, 200, '... and no longer after a write';
