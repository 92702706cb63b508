# Configuration: every directive with a bad argument, or in a context it
# does not belong to, fails `httpd -t` with a message naming it; a good
# configuration passes.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondTest;

# [ label, server-level lines, <Location> lines, directive the error names ]
my @cases = (
    [ 'a good configuration',
      [ 'ConditionalLeaseTime 30' ],
      [ 'Conditional On', 'ConditionalKey "%{REQUEST_URI}?%{QUERY_STRING}"',
        'ConditionalRequire On', 'ConditionalLockWait 5',
        'ConditionalInvalidateParent Off' ], undef ],
    [ 'Conditional maybe', [], [ 'Conditional maybe' ], 'Conditional' ],
    [ 'ConditionalRequire perhaps', [], [ 'ConditionalRequire perhaps' ],
      'ConditionalRequire' ],
    [ 'ConditionalInvalidateParent 2', [],
      [ 'ConditionalInvalidateParent 2' ], 'ConditionalInvalidateParent' ],
    [ 'ConditionalLockWait abc', [], [ 'ConditionalLockWait abc' ],
      'ConditionalLockWait' ],
    [ 'ConditionalLockWait -1', [], [ 'ConditionalLockWait -1' ],
      'ConditionalLockWait' ],
    [ 'ConditionalKey with a broken expression', [],
      [ 'ConditionalKey "%{REQUEST_URI"' ], 'ConditionalKey' ],
    [ 'ConditionalLeaseTime 0', [ 'ConditionalLeaseTime 0' ], [],
      'ConditionalLeaseTime' ],
    [ 'ConditionalLeaseTime soon', [ 'ConditionalLeaseTime soon' ], [],
      'ConditionalLeaseTime' ],
    [ 'ConditionalStore of an unknown type',
      [ 'ConditionalStore nosuch:/tmp/x.db' ], [], 'ConditionalStore' ],
    [ 'ConditionalStore without a type',
      [ 'ConditionalStore /tmp/x.db' ], [], 'ConditionalStore' ],
    [ 'a bare ConditionalStore dbd', [ 'ConditionalStore dbd' ], [], undef ],
    [ 'ConditionalStore dbd with connection settings of its own',
      [ 'ConditionalStore dbd:host=db' ], [], 'ConditionalStore' ],
    [ 'ConditionalStore in a <Location>', [],
      [ 'ConditionalStore sqlite:/tmp/x.db' ], 'ConditionalStore' ],
    [ 'ConditionalLeaseTime in a <Location>', [],
      [ 'ConditionalLeaseTime 10' ], 'ConditionalLeaseTime' ],
    [ 'ConditionalQuickHandler On', [ 'ConditionalQuickHandler On' ], [],
      undef ],
    [ 'ConditionalQuickHandler sometimes',
      [ 'ConditionalQuickHandler sometimes' ], [],
      'ConditionalQuickHandler' ],
    [ 'ConditionalQuickHandler in a <Location> (it runs before any)', [],
      [ 'ConditionalQuickHandler On' ], 'ConditionalQuickHandler' ],
);

plan tests => 2 * @cases;

my $vars  = Apache::Test::vars();
my $httpd = $vars->{httpd};
my $t     = $vars->{serverroot};
my $logs  = $vars->{t_logs};

for my $i (0 .. $#cases) {
    my ($label, $server, $location, $names) = @{ $cases[$i] };
    my $file = "$logs/configtest-$i.conf";
    open my $fh, '>', $file or die "$file: $!";
    print $fh join "\n",
        qq{ServerRoot "$t"},
        qq{Include "$vars->{t_conf}/modules.conf"},
        qq{LoadModule conditional_module "$t/../.libs/mod_conditional.so"},
        'ServerName localhost',
        'Listen 127.0.0.1:8',
        qq{PidFile "$logs/configtest.pid"},
        qq{ErrorLog "$logs/configtest_error_log"},
        qq{ConditionalStore "sqlite:$logs/configtest.db"},
        @$server,
        '<Location /x/>', @$location, '</Location>', '';
    close $fh;

    my $out = `'$httpd' -t -f '$file' 2>&1`;
    my $status = $? >> 8;
    if (defined $names) {
        isnt $status, 0, "$label: httpd -t fails";
        like $out, qr/\Q$names\E/, "... naming $names" or diag $out;
    }
    else {
        is $status, 0, "$label: httpd -t passes" or diag $out;
        like $out, qr/Syntax OK/, '... Syntax OK';
    }
}
