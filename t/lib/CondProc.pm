package CondProc;

# Real intermediaries for the tests (Varnish, a caching httpd, Chromium):
# each is started by the test itself on 127.0.0.1, on a free port, in a
# directory of its own under t/logs, and stopped when the test ends -
# whatever way it ends.

use strict;
use warnings;

use Exporter 'import';
use File::Path ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

use Apache::Test ();

our @EXPORT = qw(find_program free_port work_dir start_process wait_port
                 stop_process);

my @started;

# The first executable of the given paths or names on PATH, or undef.
sub find_program {
    for my $p (@_) {
        return $p if $p =~ m{/} && -x $p;
        for my $dir (split /:/, "$ENV{PATH}:/usr/sbin:/sbin") {
            return "$dir/$p" if -x "$dir/$p";
        }
    }
    return undef;
}

# A port nobody listens on now (the kernel's choice).
sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# A fresh directory under t/logs for one intermediary.
sub work_dir {
    my $name = shift;
    my $dir = Apache::Test::vars('t_logs') . "/$name.$$";
    File::Path::rmtree($dir);
    File::Path::mkpath($dir);
    return $dir;
}

# Run @cmd with stdout and stderr to $log; returns its pid.
sub start_process {
    my ($log, @cmd) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    push @started, $pid;
    return $pid;
}

# Wait until something accepts on the port; false after $timeout s.
sub wait_port {
    my ($port, $timeout, $pid) = @_;
    my $until = Time::HiRes::time() + ($timeout || 30);
    while (Time::HiRes::time() < $until) {
        return 1 if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $port, Proto => 'tcp');
        return 0 if $pid && waitpid($pid, POSIX::WNOHANG()) == $pid;
        Time::HiRes::sleep(0.2);
    }
    return 0;
}

# TERM to the process group, then KILL after 10 s; reaps it.
sub stop_process {
    my $pid = shift or return;
    @started = grep { $_ != $pid } @started;
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    for (1 .. 100) {
        return if waitpid($pid, POSIX::WNOHANG()) == $pid;
        Time::HiRes::sleep(0.1);
    }
    kill 'KILL', -$pid;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

# Whatever a test started and did not stop (it died half-way).
END {
    my $status = $?;
    stop_process($_) for @started;
    $? = $status;
}

1;
