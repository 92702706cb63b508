# Lost updates under concurrency: a short run of tools/stress.pl against the
# test server (the long one is `make stress`).
#
# 32 clients race read-modify-write cycles on a few documents of the legacy
# CGI. Through /api/ (Conditional On, If-Match on every PUT) no
# acknowledged increment may be missing, no ETag may name two revisions and
# no claim may be left in the store. The same race through /raw/ with blind
# PUTs (the backend alone) must lose updates: the harness can tell.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(plan ok need_cgi);
use Apache::TestUtil qw(t_cmp t_debug);
use Apache::TestRequest ();

plan tests => 7, need_cgi;

my $vars = Apache::Test::vars();
my $hostport = Apache::TestRequest::hostport();
my $tool = "$vars->{top_dir}/tools/stress.pl";
my $store = "$vars->{t_logs}/conditional.db";
my $have_sqlite3 = grep { -x "$_/sqlite3" } split /:/, $ENV{PATH} || '';

sub stress {
    my @args = @_;
    my @cmd = ($^X, $tool, '--timeout', 20, @args);
    t_debug("@cmd");
    open my $fh, '-|', @cmd or die "cannot run $tool: $!";
    my $out = join '', <$fh>;
    close $fh;
    t_debug($out);
    my %v = $out =~ /(\w+)=(\S+)/g;
    return \%v;
}

my $c = stress('--url', "http://$hostport/api/", '--clients', 32,
               '--keys', 6, '--hot', 2, '--hot-ratio', 0.8,
               '--seconds', 8, '--reads', 0.2,
               ($have_sqlite3 ? ('--store', $store) : ()));
ok t_cmp($c->{verdict}, 'PASS', 'conditional run: verdict');
ok t_cmp($c->{lost}, 0, 'conditional run: no acknowledged update lost');
ok t_cmp($c->{stale_tags}, 0, 'conditional run: no ETag names two revisions');
ok t_cmp($c->{stuck_claims}, $have_sqlite3 ? 0 : 'NA',
         'conditional run: no claim left in the store');
ok t_cmp($c->{errors}, 0, 'conditional run: no unexpected status');
t_debug("conditional run: $c->{writes} writes, $c->{412} answered 412");
ok(($c->{writes} // 0) > 0);

my $b = stress('--url', "http://$hostport/raw/", '--mode', 'blind',
               '--expect-loss', '--clients', 32, '--keys', 2, '--hot', 2,
               '--seconds', 5);
t_debug("blind run lost $b->{lost} updates");
ok(($b->{lost} // 0) > 0);
