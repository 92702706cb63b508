# One tag per representation (issue 11, items 1-5 and Expires): a backend
# that negotiates JSON/XML by Accept and en/fr by Accept-Language, named in
# Vary. Each representation gets its own strong tag from the resource's one
# version; a 304 is given only for the representation the request would
# get, and carries that representation's metadata - every line of every
# repeated header - and the ETag and Vary its 200 had, mod_deflate's
# included. A tag with a coding suffix still satisfies a write.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;
use HTTP::Date ();

plan tests => 2 * 19 + 12 + 10 + 5;

my %ask = (
    'json-en' => [ Accept => 'application/json', 'Accept-Language' => 'en' ],
    'xml-en'  => [ Accept => 'application/xml',  'Accept-Language' => 'en' ],
    'json-fr' => [ Accept => 'application/json', 'Accept-Language' => 'fr' ],
    'xml-fr'  => [ Accept => 'application/xml',  'Accept-Language' => 'fr' ],
);

sub get {
    my ($path, $variant, @more) = @_;
    return request(GET => $path, headers => [ @{ $ask{$variant} }, @more ]);
}

# Every token of every line of a list header, sorted: what a cache reads.
sub tokens {
    my ($res, $name) = @_;
    return join ',', sort map { lc } map { split /\s*,\s*/ }
                     $res->header($name);
}

sub is_variant {
    my ($res, $variant, $what) = @_;
    is_representation($res, $variant, undef, "$what: 200 $variant");
}

for my $base ('/nego', '/pnego') {
    my $name = uniq_name('var');
    my $path = "$base/docs/$name";
    request(PUT => $path, body => 'one', headers => [ 'Content-Type' => 'text/plain' ]);

    # Item 1: the same version, four representations, four tags.
    my %tag;
    for my $v (sort keys %ask) {
        my $res = get($path, $v);
        $tag{$v} = $res->header('ETag');
    }
    my %seen = map { $_ => 1 } values %tag;
    is scalar(keys %seen), 4, "$base: four representations, four tags"
        or diag explain \%tag;
    ok !(grep { !is_module_tag($_) } values %tag),
        "$base: all of them module tags" or diag explain \%tag;

    my $n = invocations($name);
    my $res = get($path, 'xml-en', 'If-None-Match' => $tag{'json-en'});
    is_variant($res, 'xml-en', "$base: XML asked with the JSON tag");
    $res = get($path, 'json-fr', 'If-None-Match' => $tag{'json-en'});
    is_variant($res, 'json-fr', "$base: French asked with the English tag");
    $res = get($path, 'json-en', 'If-None-Match' => $tag{'json-en'});
    is $res->code, 304, "$base: JSON with its own tag: 304";
    is invocations($name), $n + 2, '... without running the backend';
    is $res->header('ETag'), $tag{'json-en'}, '... with its own ETag';

    # Item 2: the 304 carries its own variant's metadata, whichever 200
    # came last (here xml-fr).
    get($path, 'xml-fr');
    $res = get($path, 'json-en', 'If-None-Match' => $tag{'json-en'});
    is $res->code, 304, "$base: JSON revalidated after an XML 200";
    is $res->header('Content-Location'), "/docs/$name.en.json",
        '... with the JSON Content-Location';
    $res = get($path, 'xml-fr', 'If-None-Match' => $tag{'xml-fr'});
    is $res->code, 304, "$base: XML-fr revalidated";
    is $res->header('Content-Location'), "/docs/$name.fr.xml",
        '... with its own Content-Location';

    # Item 3: every line of a repeated header, as the 200 sent it.
    my $full = get($path, 'xml-fr');
    $res = get($path, 'xml-fr', 'If-None-Match' => $full->header('ETag'));
    is $res->code, 304, "$base: 304 for the repeated-header check";
    is tokens($res, 'Vary'), tokens($full, 'Vary'),
        '... Vary as the 200 had it';
    is tokens($res, 'Vary'), 'accept,accept-language',
        '... Accept and Accept-Language';
    is tokens($res, 'Cache-Control'), 'max-age=2,public',
        '... both Cache-Control lines';

    # A variant the store has not seen at this version goes to the backend,
    # even with a tag that would match another one.
    request(PUT => $path, body => 'two', headers => [ 'If-Match' => $tag{'xml-fr'} ]);
    my $t = get($path, 'json-en')->header('ETag');
    $n = invocations($name);
    $res = get($path, 'xml-en', 'If-None-Match' => $t);
    is_variant($res, 'xml-en', "$base: unseen variant after a write");
    is invocations($name), $n + 1, '... answered by the backend';
    like $res->decoded_content, qr/hello two/, '... the new text';
    isnt $res->header('ETag'), $t, '... under its own tag';
}

# Items 4 and 5: Debian's mod_deflate configuration (plus JSON), proxied.
{
    my $name = uniq_name('dvar');
    my $path = "/dnego/docs/$name";
    my $gz = [ 'Accept-Encoding' => 'gzip' ];
    request(PUT => $path, body => 'one', headers => [ 'Content-Type' => 'text/plain' ]);

    my $res = get($path, 'json-en', @$gz);
    is $res->header('Content-Encoding'), 'gzip', 'deflate: compressed 200';
    my $g = $res->header('ETag');
    like $g, qr/-gzip"$/, '... tagged with -gzip';
    my $vary200 = tokens($res, 'Vary');
    like $vary200, qr/accept-encoding/, '... Vary names Accept-Encoding';
    my $plain = get($path, 'json-en')->header('ETag');

    $res = get($path, 'json-en', @$gz, 'If-None-Match' => $g);
    is $res->code, 304, 'deflate: the -gzip tag revalidates';
    is $res->header('ETag'), $g, '... the 304 carries the -gzip tag';
    is tokens($res, 'Vary'), $vary200, '... and the Vary of its 200';

    $res = get($path, 'json-en', 'If-None-Match' => $g);
    is $res->code, 200, 'deflate: the -gzip tag on an identity request: 200';
    ok !$res->header('Content-Encoding'), '... not compressed';
    is $res->header('ETag'), $plain, '... under the identity tag';

    # Item 4: the -gzip tag is a tag of the current version.
    $res = request(PUT => $path, body => 'two',
                   headers => [ @$gz, 'If-Match' => $g ]);
    ok $res->is_success, 'PUT with If-Match: the -gzip tag succeeds'
        or diag $res->code . ' ' . $res->content;
    $res = request(PUT => $path, body => 'three',
                   headers => [ @$gz, 'If-Match' => $g ]);
    is $res->code, 412, '... once: the old -gzip tag is stale now';
    my $named = $res->header('ETag');
    $res = request(PUT => $path, body => 'three',
                   headers => [ @$gz, 'If-Match' => $named ]);
    ok $res->is_success, '... and the tag the 412 named works'
        or diag "412 named $named; " . $res->code;
}

# Item 4 on the plain JSON API (a GET with gzip, then a PATCH).
{
    my $name = uniq_name('gzw');
    my $path = "/gzapi/docs/$name";
    create_doc($path, { text => 'all work and no play ' x 50 });
    my $res = request(GET => $path, headers => [ 'Accept-Encoding' => 'gzip' ]);
    my $g = $res->header('ETag');
    like $g, qr/-gzip"$/, 'gzapi: GET with gzip hands out a -gzip tag';
    $res = request(PATCH => $path, json => { more => 1 },
                   headers => [ 'Accept-Encoding' => 'gzip', 'If-Match' => $g ]);
    is $res->code, 200, '... and PATCH with it succeeds';
    is stored_data($name)->{more}, 1, '... the backend wrote';
    $res = request(DELETE => $path,
                   headers => [ 'Accept-Encoding' => 'gzip', 'If-Match' => $g ]);
    is $res->code, 412, '... DELETE with the now stale tag: 412';
    ok stored_doc($name), '... nothing deleted';
    my $named = $res->header('ETag');
    $res = request(DELETE => $path, headers => [ 'If-Match' => $named ]);
    is $res->code, 204, '... the tag the 412 named deletes';
    is stored_doc($name), undef, '... gone';
    # a weak -gzip tag is no strong validator
    create_doc($path, { v => 1, text => 'all work and no play ' x 50 });
    $g = request(GET => $path, headers => [ 'Accept-Encoding' => 'gzip' ])
        ->header('ETag');
    (my $w = "W/$g");
    $res = request(PUT => $path, json => { v => 2 }, headers => [ 'If-Match' => $w ]);
    is $res->code, 412, 'gzapi: a weak -gzip tag fails If-Match';
    (my $junk = $g) =~ s/-gzip"$/-gzip-gzip"/;
    $res = request(PUT => $path, json => { v => 2 }, headers => [ 'If-Match' => $junk ]);
    is $res->code, 412, '... and so does a doubled suffix';
    $res = request(PUT => $path, json => { v => 2 }, headers => [ 'If-Match' => $g ]);
    is $res->code, 200, '... the tag itself succeeds';
}

# The 304's Expires is what a 200 sent now would carry (mod_expires).
{
    my $name = uniq_name('xvar');
    my $path = "/xnego/docs/$name";
    request(PUT => $path, body => 'one', headers => [ 'Content-Type' => 'text/plain' ]);
    my $res = get($path, 'json-en');
    my $t = $res->header('ETag');
    ok $res->header('Expires'), 'expires: the 200 has an Expires';
    sleep 2;
    $res = get($path, 'json-en', 'If-None-Match' => $t);
    is $res->code, 304, 'expires: 304';
    my $date = HTTP::Date::str2time($res->header('Date'));
    my $exp = HTTP::Date::str2time($res->header('Expires'));
    ok $exp && $date && $exp >= $date + 3600 - 1,
        '... its Expires is an hour after its own Date'
        or diag 'Date ' . $res->header('Date') . ', Expires '
                . $res->header('Expires');
    is scalar(() = $res->header('Expires')), 1, '... one Expires';
    like tokens($res, 'Cache-Control'), qr/max-age=3600/,
        '... and the Cache-Control of its 200';
}
