#!/usr/bin/env bash
# Runs nbi's C code under AddressSanitizer + UndefinedBehaviorSanitizer, then a
# representative subset under valgrind memcheck.
#
#   bash tools/sanitize.sh            # from the source tree; about 10-15 minutes on 2 cores
#   NBI_SANITIZE_TESTS="flow-grad nn-layers" bash tools/sanitize.sh   # chosen test files
#   NBI_VALGRIND_TESTS="" bash tools/sanitize.sh   # no valgrind part (.ci/run runs it so)
#
# R itself is not instrumented: the package is compiled with -fsanitize=address,undefined
# into a private library, and R runs with libasan preloaded. Leak detection is off (R's
# own allocations at exit are not ours); any ASan or UBSan report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
lib=$(mktemp -d /tmp/nbi-san-lib.XXXXXX)
build=$(mktemp -d /tmp/nbi-san-src.XXXXXX)
log=$(mktemp -d /tmp/nbi-san-log.XXXXXX)
git ls-files | grep -v '\.o$\|\.so$' | tar -cf - -T - | tar -xf - -C "$build"

san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
mkdir -p "$build/.R"
cat > "$build/.R/Makevars" <<MK
CFLAGS = -g -O1 $san
LDFLAGS = $san
MK
echo "==> building nbi with $san"
R_MAKEVARS_USER="$build/.R/Makevars" R CMD INSTALL --no-test-load -l "$lib" "$build" > "$log/install.log" 2>&1 ||
  { tail -30 "$log/install.log"; exit 1; }

asan_lib=$(gcc -print-file-name=libasan.so)
tests=${NBI_SANITIZE_TESTS:-"nn-layers nn-seq flow-grad flow-density resnet-gru set-transformer importance fit robust interrupt threads fuzz c2st diagnostics"}
status=0
run_tests() {  # $1: label, then the command prefix
  local label=$1; shift
  for t in $tests; do
    f="$src/tests/testthat/test-$t.R"
    [ -f "$f" ] || continue
    out="$log/$label-$t.log"
    ( cd "$src/tests/testthat" && NOT_CRAN=true "$@" "
        library(testthat); library(nbi, lib.loc = '$lib')
        r <- as.data.frame(test_file('$f', package = 'nbi', load_package = 'installed', reporter = 'silent'))
        cat(sprintf('RESULT %d expectations, %d failed, %d errors\n', sum(r\$nb), sum(r\$failed), sum(r\$error)))
      " ) > "$out" 2>&1 || true
    res=$(grep -h "^RESULT" "$out" || echo "RESULT did not finish")
    bad=$(grep -c "ERROR: AddressSanitizer\|runtime error:\|Invalid read\|Invalid write\|uninitialised\|definitely lost: [1-9]\|ERROR SUMMARY: [1-9]" "$out" || true)
    printf "%-10s %-16s %s; sanitizer reports: %s\n" "$label" "$t" "${res#RESULT }" "$bad"
    if [ "$bad" != "0" ] || ! grep -q "RESULT [0-9]* expectations, 0 failed, 0 errors" "$out"; then
      status=1; grep -m5 -A8 "ERROR: AddressSanitizer\|runtime error:\|Invalid read\|Invalid write" "$out" || tail -5 "$out"
    fi
  done
}
echo "==> ASan + UBSan (logs in $log)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_tests asan env LD_PRELOAD="$asan_lib" Rscript -e

if [ "${NBI_VALGRIND_TESTS-unset}" = "" ]; then  # set and empty: no valgrind part
  exit $status
fi
echo "==> valgrind memcheck (plain build, a small subset)"
lib2=$(mktemp -d /tmp/nbi-vg-lib.XXXXXX)
rm -f "$build"/src/*.o "$build"/src/*/*.o "$build"/src/*.so
R CMD INSTALL -l "$lib2" "$build" > "$log/install-vg.log" 2>&1 || { tail -30 "$log/install-vg.log"; exit 1; }
tests=${NBI_VALGRIND_TESTS:-"nn-layers nn-seq interrupt"}
lib=$lib2
run_tests valgrind R -d "valgrind --track-origins=no" --vanilla --slave -e
exit $status
