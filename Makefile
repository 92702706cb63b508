# mod_conditional - build, install, test, demo, benchmark.
#
#   make            build mod_conditional.so with apxs (warnings are errors)
#   make install    install into `apxs -q LIBEXECDIR` plus Debian's
#                   mods-available/conditional.{load,conf}
#   make test       unit tests + the Apache::Test suite (as root: installs what
#                   is missing and runs the suite as an unprivileged user)
#   make test SANITIZE=1
#                   the same, built with ASan/UBSan and httpd run with the
#                   runtime preloaded; any sanitizer report fails the run
#   make run        demo: httpd + module + SQLite + a legacy CGI API on
#                   http://localhost:8080/
#   make bench      wrk benchmark table (docs/benchmarks.md)
#   make stress     long lost-update stress run (docs/design.md)
#   make deb        Debian package libapache2-mod-conditional in dist/
#                   (dpkg-buildpackage -us -uc -b; build/deb.sh)
#   make fuzz       libFuzzer targets (fuzz/), 10 s each (FUZZ_SECONDS);
#                   sh build/fuzz.sh long: the recorded run, docs/fuzzing.md

APXS     ?= $(shell command -v apxs || command -v apxs2)
CC       ?= cc
WARN      = -Wall -Wextra -Werror
SRCS      = mod_conditional.c mod_conditional_config.c mod_conditional_write.c \
            mod_conditional_response.c mod_conditional_status.c \
            mod_conditional_renew.c mod_conditional_dbd.c mod_conditional_variant.c \
            mod_conditional_key.c mod_conditional_quick.c key.c precond.c variant.c \
            store.c sqlite_store.c sqlite_mmap.c sqlite_wlock.c pgsql_store.c
HDRS      = mod_conditional_private.h key.h precond.h variant.h store.h sqlite_mmap.h sqlite_wlock.h \
            pgsql_store.h
# SANITIZE=1 builds module, CLI and unit tests with ASan/UBSan. The module
# links the runtimes (apxs passes -Wl,X to libtool one word at a time, so
# the runtime libraries are named, not -fsanitize=...); httpd must still
# load libasan first: build/run-tests.sh runs httpd as build/asan-httpd.sh.
ifeq ($(SANITIZE),1)
SAN       = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer
SAN_LIBS  = -lasan -lubsan
endif
APR_CFLAGS = $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null)
APR_LIBS   = $(shell apr-1-config --link-ld --libs 2>/dev/null) \
             $(shell apu-1-config --link-ld --libs 2>/dev/null)

.PHONY: all install unit test run stop bench bench-durable stress fuzz clean deps deb FORCE

# Everything built depends on .build-flags, rewritten only when SANITIZE
# changes, so switching between a plain and a sanitizer build rebuilds all.
.build-flags: FORCE
	@echo '$(SAN)' | cmp -s - $@ || echo '$(SAN)' >$@

all: .libs/mod_conditional.so tools/conditionalctl

.libs/mod_conditional.so: $(SRCS) $(HDRS) .build-flags
	$(APXS) -c $(foreach f,$(WARN) $(SAN) $(CPPFLAGS) $(CFLAGS),-Wc,$(f)) \
	    $(foreach f,$(LDFLAGS),-Wl,$(f)) \
	    -o mod_conditional.so $(SRCS) -lsqlite3 $(SAN_LIBS)

STORE_SRCS = store.c sqlite_store.c sqlite_mmap.c sqlite_wlock.c pgsql_store.c

tools/conditionalctl: tools/conditionalctl.c $(STORE_SRCS) $(HDRS) .build-flags
	$(CC) $(WARN) $(SAN) -g -O2 $(CPPFLAGS) $(CFLAGS) $(APR_CFLAGS) -I. \
	    $(LDFLAGS) -o $@ tools/conditionalctl.c $(STORE_SRCS) $(APR_LIBS) \
	    -lsqlite3

install: all
	$(APXS) -i -n conditional .libs/mod_conditional.so
	install -d $(DESTDIR)$(shell $(APXS) -q SYSCONFDIR)/mods-available
	install -m 644 build/conditional.load build/conditional.conf \
	    $(DESTDIR)$(shell $(APXS) -q SYSCONFDIR)/mods-available/
	install -m 755 tools/conditionalctl $(DESTDIR)/usr/local/sbin/conditionalctl
	install -D -m 644 tools/conditionalctl.8 \
	    $(DESTDIR)/usr/local/share/man/man8/conditionalctl.8

unit/test_precond: unit/test_precond.c precond.c precond.h .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_precond.c precond.c $(APR_LIBS)

unit/test_variant: unit/test_variant.c variant.c variant.h precond.c precond.h .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_variant.c variant.c precond.c $(APR_LIBS)

CONTRACT = unit/store_contract.c unit/store_contract.h

unit/test_key: unit/test_key.c key.c key.h .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_key.c key.c $(APR_LIBS)

unit/test_store: unit/test_store.c $(CONTRACT) $(STORE_SRCS) $(HDRS) .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_store.c \
	    unit/store_contract.c $(STORE_SRCS) $(APR_LIBS) -lsqlite3

# Power cuts at the store's own fsyncs, through a VFS of the test's own.
unit/test_powercut: unit/test_powercut.c $(STORE_SRCS) $(HDRS) .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_powercut.c \
	    $(STORE_SRCS) $(APR_LIBS) -lsqlite3

unit/test_pgsql: unit/test_pgsql.c $(CONTRACT) $(STORE_SRCS) $(HDRS) .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 $(APR_CFLAGS) -I. -o $@ unit/test_pgsql.c \
	    unit/store_contract.c $(STORE_SRCS) $(APR_LIBS) -lsqlite3 -lpthread

unit/test_mmap: unit/test_mmap.c sqlite_mmap.c sqlite_mmap.h .build-flags
	$(CC) $(WARN) $(SAN) -g -O1 -I. -o $@ unit/test_mmap.c sqlite_mmap.c -lsqlite3 -lpthread

# What a write costs the store, SQLite and PostgreSQL, with and without
# an fsync per commit (docs/benchmarks.md, docs/design.md "Power cuts").
unit/bench_durable_normal: unit/bench_durable.c $(STORE_SRCS) $(HDRS)
	$(CC) $(WARN) -O2 $(APR_CFLAGS) -I. \
	    -o $@ unit/bench_durable.c $(STORE_SRCS) $(APR_LIBS) -lsqlite3 -lpthread

unit/bench_durable_full: unit/bench_durable.c $(STORE_SRCS) $(HDRS)
	$(CC) $(WARN) -O2 $(APR_CFLAGS) -I. -DSQ_SYNCHRONOUS='"FULL"' \
	    -o $@ unit/bench_durable.c $(STORE_SRCS) $(APR_LIBS) -lsqlite3 -lpthread

# What a remembered lookup (a 304's store cost) takes: a timing, run by
# hand (unit/bench_lookup DIR), never by make unit.
unit/bench_lookup: unit/bench_lookup.c $(STORE_SRCS) $(HDRS)
	$(CC) $(WARN) -O2 $(APR_CFLAGS) -I. \
	    -o $@ unit/bench_lookup.c $(STORE_SRCS) $(APR_LIBS) -lsqlite3 -lpthread

bench-durable: unit/bench_durable_normal unit/bench_durable_full
	sh build/bench_store.sh

unit: unit/test_precond unit/test_variant unit/test_key unit/test_store unit/test_powercut unit/test_pgsql unit/test_mmap
	./unit/test_precond
	./unit/test_variant
	./unit/test_key
	./unit/test_store
	./unit/test_powercut
	./unit/test_pgsql
	./unit/test_mmap

deps:
	sh build/deps.sh

test: deps
	$(MAKE) all unit
	SANITIZE=$(SANITIZE) sh build/run-tests.sh

run: deps all
	sh build/demo.sh start

stop:
	sh build/demo.sh stop

bench: deps all
	sh build/bench.sh
	sh build/bench_dbd.sh

stress: deps all
	sh build/run-tests.sh stress

deb: deps
	sh build/deb.sh

fuzz: deps
	sh build/fuzz.sh

clean:
	rm -rf .libs *.la *.lo *.slo *.o mod_conditional.so tools/conditionalctl .build-flags \
	    fuzz/bin fuzz/out \
	    unit/test_precond unit/test_variant unit/test_key unit/test_store unit/test_powercut unit/test_pgsql unit/test_mmap unit/bench_durable_normal unit/bench_lookup \
	    unit/bench_durable_full t/logs t/conf/apache_test_config.pm \
	    t/conf/extra.conf t/conf/httpd.conf t/conf/modperl_inc.pl t/TEST
