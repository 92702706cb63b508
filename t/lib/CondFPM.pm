package CondFPM;

# Debian's php-fpm for the PHP backend (t/php/docs.php): started by the
# test itself, as the user the test runs as, with a configuration of its
# own in t/logs/fpm/, listening on the Unix socket that t/conf/extra.conf.in
# names (t/logs/php-fpm.sock).
#
#   my $fpm = CondFPM->start or plan skip_all => CondFPM->why;
#   $fpm->stop;       # also done when the object goes away

use strict;
use warnings;

use File::Path ();
use IO::Socket::UNIX ();
use POSIX ();
use Time::HiRes ();

use Apache::Test ();

my $why = '';

sub why { $why }

sub binary {
    my @found = sort glob '/usr/sbin/php-fpm*';
    return $found[-1];
}

sub socket_path { Apache::Test::vars('t_logs') . '/php-fpm.sock' }

# Start php-fpm with CHILDREN workers; undef (and why()) if it cannot run.
sub start {
    my ($class, %opt) = @_;
    my $bin = binary()
        or return fail('php-fpm is not installed (sh build/deps.sh '
                       . 'installs php-fpm)');
    my $dir = Apache::Test::vars('t_logs') . '/fpm';
    my $sock = socket_path();
    File::Path::rmtree($dir);
    File::Path::mkpath($dir);
    unlink $sock;
    my $children = $opt{children} || 20;
    open my $fh, '>', "$dir/php-fpm.conf" or return fail("$dir: $!");
    print $fh <<"EOF";
; Written by t/lib/CondFPM.pm for the test run.
[global]
pid = $dir/php-fpm.pid
error_log = $dir/php-fpm.log
daemonize = no

[docs]
listen = $sock
pm = static
pm.max_children = $children
catch_workers_output = yes
php_admin_flag[log_errors] = on
php_admin_value[error_log] = $dir/php-errors.log
EOF
    close $fh or return fail("$dir/php-fpm.conf: $!");

    my $pid = fork // return fail("fork: $!");
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/php-fpm.out";
        open STDERR, '>&', \*STDOUT;
        { exec $bin, '-F', '-y', "$dir/php-fpm.conf", '-p', $dir }
        POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, dir => $dir, sock => $sock, owner => $$ },
        $class;
    my $deadline = Time::HiRes::time() + 60;
    while (Time::HiRes::time() < $deadline) {
        return $self if IO::Socket::UNIX->new(Peer => $sock);
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            delete $self->{pid};
            return fail("$bin exited with status " . ($? >> 8)
                        . '; see ' . "$dir/php-fpm.log");
        }
        Time::HiRes::sleep(0.1);
    }
    $self->stop;
    return fail("$bin did not listen on $sock within 60 s");
}

sub fail {
    $why = shift;
    return undef;
}

sub pid { $_[0]{pid} }

# Stop php-fpm and wait for it (and its workers) to be gone.
sub stop {
    my $self = shift;
    my $pid = delete $self->{pid} or return;
    kill 'QUIT', $pid;
    my $deadline = Time::HiRes::time() + 30;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            waitpid $pid, 0;
            last;
        }
        Time::HiRes::sleep(0.1);
    }
    unlink $self->{sock};
}

sub DESTROY {
    my $self = shift;
    local $?;
    $self->stop if $self->{pid} && $self->{owner} == $$;
}

1;
