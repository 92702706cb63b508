# Writes whose backend is not done when the module first sees the answer.
#  1. A CGI that prints its headers (200) first and writes afterwards: the
#     new version is committed with the headers, so the write's response
#     carries its ETag, but the claim is held until the response is
#     complete; meanwhile reads are untagged and the old tag matches nothing.
#  2. A write reached through an internal redirect (mod_actions): the
#     backend's status is on the last request, and decides the outcome.

use strict;
use warnings FATAL => 'all';
# Tags are undef when the module fails; such a test must fail, not die.
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 12;

# 1. Headers first, write later.
{
    my $name = uniq_name('early');
    my $path = "/api/docs/$name";
    create_doc($path, { v => 0 });
    my $e1 = current_tag($path);
    my $ran = invocations($name);
    my $w = background(PUT => "$path?early=1&sleep=3",
                       headers => [ 'If-Match' => $e1 ],
                       json => { v => 'A' });
    wait_invoked($name, $ran);
    sleep 0.5;      # the CGI has sent its headers; it writes 3 s after them
    my $res = request(GET => $path);
    is $res->code, 200, 'early: a GET while the write is in progress';
    ok !defined $res->header('ETag'), '... is not tagged'
        or diag 'ETag: ' . $res->header('ETag') . ', data: '
                . json_of($res)->{data}{v};
    is request(GET => $path, headers => [ 'If-None-Match' => $e1 ])->code,
        200, '... and the old tag gets no 304';
    my $r = $w->();
    is $r->[0], 200, 'early: the write succeeds';
    ok is_module_tag($r->[1]) && $r->[1] ne $e1, '... with a new ETag'
        or diag $r->[1];
    $res = request(GET => $path);
    is $res->header('ETag'), $r->[1], '... which is what a GET returns now';
    is json_of($res)->{data}{v}, 'A', '... with the data it wrote';
}

# 2. Through mod_actions' internal redirect.
{
    my $name = uniq_name('act');
    my $path = "/act/docs/$name";
    my $res = request(PUT => "$path?status=400",
                      headers => [ 'If-None-Match' => '*' ],
                      json => { v => 1 });
    is $res->code, 400, 'action: the backend refuses a create';
    $res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
                   json => { v => 1 });
    is $res->code, 201, '... so a create-only PUT is still allowed';
    is stored_data($name)->{v}, 1, '... and creates it';
    $res = request(PUT => $path, headers => [ 'If-None-Match' => '*' ],
                   json => { v => 2 });
    is $res->code, 412, '... after which create-only is refused';
    open my $log, '<', logs_dir() . '/conditional_log' or die "log: $!";
    ok scalar(grep { /\Q$name\E\S* 400 release 400$/ } <$log>),
        'action: the access log shows the decision';
}
