# No lost updates through the module in front of the legacy CGI (/api/),
# and lost updates against the same CGI without it (/raw/): see
# t/lib/CondRace.pm for the cases. t/fpm.t runs the same cases for PHP-FPM.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use CondRace;

plan tests => CondRace::TESTS;

lost_update_cases('/api', '/raw');
