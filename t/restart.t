# Versions outlive a graceful restart; a store that is deleted and
# re-created gets a new identity, so no tag from the old one can match; and
# a tag from one store never matches in another, whatever its version.

use strict;
use warnings FATAL => 'all';
no warnings 'uninitialized';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time sleep);
use CondTest;

plan tests => 11;

my %other = (vhost => 'conditional_otherstore');
my $name = uniq_name('restart');
my $path = "/api/docs/$name";
create_doc("/raw/docs/$name");

my $main = current_tag($path);
my $oth  = current_tag($path, %other);
my ($main_id) = $main =~ /^"([0-9a-f]{16})-/;
my ($oth_id, $oth_v) = $oth =~ /^"([0-9a-f]{16})-([0-9a-f]+)"$/;
ok $main_id && $oth_id && $main_id ne $oth_id,
    'two stores, two identities in their tags' or diag "$main / $oth";

# The other store's current version, under the main store's identity.
my $forged = qq{"$main_id-$oth_v"};
my $res = request(GET => $path, %other,
                  headers => [ 'If-None-Match' => $forged ]);
is $res->code, 200, "another store's identity with this version: no 304";
$res = request(PUT => $path, %other, headers => [ 'If-Match' => $forged ],
               json => { v => 2 });
is $res->code, 412, '... and no If-Match either';
$oth = current_tag($path, %other);

# Delete the other store, then restart gracefully.
my $logs = logs_dir();
unlink grep { -e } map { "$logs/other.db$_" } '', '-wal', '-shm', '-journal';
ok !-e "$logs/other.db", 'the other store is deleted';

open my $fh, '<', "$logs/httpd.pid" or die "httpd.pid: $!";
chomp(my $pid = <$fh>);
ok kill('USR1', $pid), 'graceful restart signalled';
# Wait until the new generation of children answers.
my $generation = sub {
    open my $log, '<', "$logs/error_log" or return 0;
    return scalar grep { /resuming normal operations/ } <$log>;
};
my $before = $generation->();
my $t0 = time;
sleep 0.2 while $generation->() <= $before && time - $t0 < 20;
sleep 1;
ok $generation->() > $before, 'the server restarted';

$res = request(GET => $path, headers => [ 'If-None-Match' => $main ]);
is $res->code, 304, 'main store: a tag from before the restart still matches';
$res = request(PUT => $path, headers => [ 'If-Match' => $main ],
               json => { v => 3 });
is $res->code, 200, '... and If-Match with it still works';

# A store made anew while the server ran stays quiet for one lease (3 s on
# this vhost): reads untagged, writes 503, for writes that may still be in
# flight from before (t/storefiles.t). Then it tags again.
$res = request(GET => $path, %other, headers => [ 'If-None-Match' => $oth ]);
is $res->code, 200, 're-created store: the old tag does not match';
$t0 = time;
while (!is_module_tag($res->header('ETag')) && time - $t0 < 15) {
    sleep 0.5;
    $res = request(GET => $path, %other,
                   headers => [ 'If-None-Match' => $oth ]);
}
my $new = $res->header('ETag');
ok is_module_tag($new) && $new !~ /^"\Q$oth_id\E-/,
    '... the new tag has a new store identity' or diag "$oth -> $new";
$res = request(PUT => $path, %other, headers => [ 'If-Match' => $oth ],
               json => { v => 4 });
is $res->code, 412, '... and If-Match with the old tag is refused';
