# Throughput of the C core of nbi's masked autoregressive flow (MAF), next to PyTorch.
#
#   Rscript bench/throughput.R            # after R CMD INSTALL .
#   NBI_BENCH_SECONDS=5 Rscript bench/throughput.R   # longer timings (default 2 s each)
#   NBI_BENCH_REPEAT=3 Rscript bench/throughput.R    # best of 3 of each timing (default 1)
#   NBI_BENCH_NO_TORCH=1 Rscript bench/throughput.R  # stored PyTorch figures, not this run's
#   NBI_BENCH_PYTHON=/usr/bin/python3 Rscript bench/throughput.R  # the python with torch
#
# For three flow shapes (parameters d, context size, hidden units, blocks, mixture
# components, batch size), each with 2 hidden layers per MADE block and an identity
# featurizer, and at 1 and 2 threads, it prints
#   train/s   training samples per second: forward + backward + Adam step, through the
#             same C entry point fit() uses (random standardised data, no validation set),
#             in steady state: the time of a call of 1 + E epochs less that of a call of
#             one epoch, for the E epochs (fit() makes one call for all its epochs);
#   setup s   seconds of that one-epoch call (the call's set-up, paid once per fit(): the
#             first touch of its scratch memory, masks, copies of the parameters, plus
#             one epoch);
#   sample/s  posterior draws per second for one observation;
#   logq/s    log-densities per second, one context per draw (as in training);
#   logq1/s   log-densities per second, one shared context (as in importance sampling);
#   gemm      GFLOP/s of a (batch x hidden) %*% (hidden x hidden) product through R's BLAS,
#             timed in the same run: what the hardware and BLAS give for that shape;
#   train GF  estimated GFLOP/s of training: the MADE weight-matrix products only, 2 flops
#             per weight per sample forward and twice that backward;
#   /torch    the ratio of nbi's rate to the PyTorch reference figure in the column before.
# The PyTorch reference is measured in the same run, after nbi, when a python3 that imports
# torch is found (NBI_BENCH_PYTHON, else python3, else /usr/bin/python3):
# bench/reference/torch_maf.py builds the same flow in float32 (its parameter count is
# checked against nbi's) and times, at each thread count (torch's threads and OpenBLAS's),
# with the same NBI_BENCH_SECONDS and NBI_BENCH_REPEAT: training (-log q, backward, gradient-
# norm clip 5, Adam; no iterate average, which nbi's trainer also keeps), draws for one
# context (the plain sequential inverse: d passes of each block), log-densities (one context
# each). Each shape's reference is PyTorch's best over the thread counts; the per-thread
# figures are printed too. Without torch (or with NBI_BENCH_NO_TORCH=1, or when a run fails)
# the ratios use the figures stored below, measured on another CPU (an AVX-512 Xeon), and
# the output says so. Under NBI_BENCH_SMOKE=1 PyTorch runs at one thread count with tiny
# calls and no warm-up: it checks the scripts run, its figures mean nothing.
# Every shape runs in both compute precisions ("prec"): float64 products (dgemm) and float32
# products (sgemm on float copies, engine option precision = "float32"; PyTorch's figures
# are float32).
# "threads" is nbi's `threads`: nbi computes each matrix product in fixed column panels
# spread over its OpenMP threads, on a single-threaded BLAS (set from R where OpenBLAS
# allows, see the "BLAS threads" line), as fit() and predict() do; the "gemm" column's
# reference product uses the BLAS's own `threads` threads.
#
# OpenMP threads that spin while waiting lose badly when another process holds a core:
# compare with  OMP_WAIT_POLICY=passive Rscript bench/throughput.R  (the policy is read
# when the OpenMP runtime loads, so it must be set before R starts).
#
# The machine may be shared: the load average is printed before and after. Each rate comes
# from one run of about NBI_BENCH_SECONDS seconds, sized by shorter calibration runs.

suppressPackageStartupMessages(library(nbi))
options(matprod = "blas")  # %*% straight to BLAS, no NaN scan, like the C core

# NBI_BENCH_SMOKE=1: every measurement for a few milliseconds (CI checks the script runs)
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
target <- as.numeric(Sys.getenv("NBI_BENCH_SECONDS", if (smoke) "0.01" else "2"))
if (!is.finite(target) || target <= 0) target <- 2
repeats <- as.integer(Sys.getenv("NBI_BENCH_REPEAT", "1"))
if (is.na(repeats) || repeats < 1) repeats <- 1L

configs <- data.frame(
  d       = c(3L, 8L, 12L),
  context = c(64L, 256L, 16L),
  hidden  = c(32L, 256L, 500L),
  blocks  = c(10L, 20L, 15L),
  mixture = c(8L, 8L, 8L),
  batch   = c(256L, 512L, 50L)
)
# Stored PyTorch reference figures (samples/s) for the same three shapes, in the same order,
# measured on another machine: used only when torch cannot run here (see above).
torch_ref <- data.frame(train = c(51000, 7000, 1240), sample = c(136000, 3950, 950),
                        logq = c(293000, 21400, 11700))
torch_ref_cpu <- "an AVX-512 Xeon"
thread_counts <- c(1L, 2L)
precisions <- c("float64", "float32")
layers <- 2L

# ---- BLAS threads -------------------------------------------------------------------
# OpenBLAS exports openblas_set_num_threads_(int *), callable through .C once its shared
# object (already loaded by R) is opened by name. Other BLAS libraries: left alone.
blas_threads_settable <- local({
  ok <- FALSE
  lib <- tryCatch(La_library(), error = function(e) "")
  if (grepl("openblas", lib, ignore.case = TRUE) && file.exists(lib)) {
    ok <- tryCatch({
      dyn.load(lib, local = TRUE, now = TRUE)
      is.loaded("openblas_set_num_threads_")
    }, error = function(e) FALSE)
  }
  ok
})
set_blas_threads <- function(n) {
  if (blas_threads_settable) invisible(.C("openblas_set_num_threads_", as.integer(n)))
}

# ---- timing ---------------------------------------------------------------------------
elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}
# `run(size)` does `size` units of work and returns the seconds it took. Starting from
# `size0`, the size is scaled up until one run takes at least half of `target` seconds;
# the rate (units per second) of that last size is returned, from the fastest of `repeats`
# runs (a shared VM's runs vary by 15-25%).
measure <- function(run, size0, max_size = Inf) {
  size <- size0
  for (attempt in 1:5) {
    s <- run(size)
    if (s >= 0.5 * target || size >= max_size) break
    size <- min(max_size, ceiling(size * min(50, 1.1 * target / max(s, 1e-3))))
  }
  for (r in seq_len(repeats - 1L)) s <- min(s, run(size))
  size / max(s, 1e-6)
}

loadavg <- function() {
  la <- tryCatch(readLines("/proc/loadavg", n = 1, warn = FALSE), error = function(e) "")
  if (length(la) && nzchar(la)) paste(strsplit(la, " ")[[1]][1:3], collapse = " ") else "n/a"
}

# Entries of the weight matrices of all MADE blocks: the multiply-adds of one forward pass
# of one sample through the flow (biases and activations not counted).
made_weights <- function(d, nc, H, layers, blocks, K) {
  per_block <- function(OD) H * d + H * nc + (layers - 1) * H * H + OD * H + OD * nc
  (blocks - 1) * per_block(2 * d) + per_block(3 * K * d)
}

# ---- the PyTorch reference in the same run ---------------------------------------------
here <- local({   # this script's folder, for bench/lib and bench/reference
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
  if (is.na(f)) "bench" else dirname(f)
})
torch_script <- file.path(here, "reference", "torch_maf.py")
source(file.path(here, "lib", "torch.R"))   # find_torch_python(), run_torch_script()
source(file.path(here, "lib", "cpu.R"))     # cpu_info: the CPU's model and vector ISA
torch_python <- if (file.exists(torch_script)) find_torch_python() else ""
# torch_maf.py for one shape at every thread count: a data frame (one row per thread count,
# with the torch version and BLAS), or NULL when it fails
run_torch <- function(cf) {
  args <- c("--d", cf$d, "--context", cf$context, "--hidden", cf$hidden,
            "--blocks", cf$blocks, "--mixture", cf$mixture, "--layers", layers,
            "--batch", cf$batch, "--seconds", target, "--repeat", repeats,
            # smoke: one thread count, no warm-up, tiny calls (the script runs, in seconds)
            "--threads", paste(if (smoke) thread_counts[1] else thread_counts, collapse = ","),
            if (smoke) c("--warmup", 0, "--draws", 16, "--eval", 64))
  run_torch_script(torch_python, torch_script, args,
                   c("threads", "params", "train", "sample", "logq"))
}

cat("nbi throughput benchmark\n")
cat(sprintf("nbi %s | %s | %d cores\n", utils::packageVersion("nbi"), R.version.string,
            parallel::detectCores()))
cat("BLAS:   ", extSoftVersion()[["BLAS"]], "\n")
cat("LAPACK: ", La_library(), "\n")
cat(sprintf("CPU: %s | vector ISA: %s\n", cpu_info$model, cpu_info$isa))
cat("float32 products:", .Call(nbi:::C_r_sgemm_kernel),
    "(nbi's own kernel is used on AVX-512 CPUs; NBI_SGEMM=blas keeps the BLAS's sgemm);",
    "the BLAS's sgemm:", if (isTRUE(.Call(nbi:::C_r_have_sgemm))) "linked" else "not linked",
    "\n")
cat("float64 products:", .Call(nbi:::C_r_dgemm_kernel),
    "(nbi's own kernel is used on AVX-512 CPUs; NBI_DGEMM=blas keeps the BLAS's dgemm)\n")
cat("PyTorch reference:", if (nzchar(torch_python))
  sprintf("measured in this run (%s %s)", torch_python, torch_script) else
  sprintf("STORED figures from %s, not this CPU (%s)", torch_ref_cpu,
          if (identical(Sys.getenv("NBI_BENCH_NO_TORCH"), "1")) "NBI_BENCH_NO_TORCH=1" else
            "no python3 with torch found"), "\n")
cat(sprintf("BLAS threads: %s\n", if (blas_threads_settable)
  "1: nbi spreads its products over `threads` itself (OpenBLAS)" else
  "not settable from R; whatever OPENBLAS_NUM_THREADS / OMP_NUM_THREADS give"))
omp_env <- Sys.getenv(c("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
cat("environment: ", paste0(names(omp_env), "=", ifelse(nzchar(omp_env), omp_env, "(unset)"),
                           collapse = " "), "\n", sep = "")
cat(sprintf("about %.1f s per measurement, best of %d; load average at start: %s\n\n", target,
            repeats, loadavg()))

rows <- list()
t_start <- proc.time()[["elapsed"]]
set.seed(1)
for (i in seq_len(nrow(configs))) {
  cf <- configs[i, ]
  spec <- nbi:::model_spec(featurizer_identity(),
                           flow_maf(blocks = cf$blocks, hidden = cf$hidden, layers = layers,
                                    mixture = cf$mixture),
                           n_in = cf$context, d = cf$d)
  params <- nbi:::model_init(spec, 1)
  np <- length(params)
  W <- made_weights(cf$d, cf$context, cf$hidden, layers, cf$blocks, cf$mixture)
  n_train <- 4L * cf$batch                      # four batches per epoch
  x <- matrix(stats::rnorm(cf$context * n_train), cf$context, n_train)
  theta <- matrix(stats::rnorm(cf$d * n_train), cf$d, n_train)
  x1 <- matrix(stats::rnorm(cf$context), cf$context, 1)
  n_eval <- 2048L                               # draws per log-density call
  x_eval <- matrix(stats::rnorm(cf$context * n_eval), cf$context, n_eval)
  theta_eval <- matrix(stats::rnorm(cf$d * n_eval), cf$d, n_eval)
  a <- matrix(stats::rnorm(cf$batch * cf$hidden), cf$batch, cf$hidden)
  b <- matrix(stats::rnorm(cf$hidden * cf$hidden), cf$hidden, cf$hidden)

  for (prec in precisions) for (th in thread_counts) {
    spec$precision <- prec
    # the C core spreads its products in panels over the threads, on a single-threaded BLAS
    # (as fit() and predict() do)
    set_blas_threads(1L)
    used_per_epoch <- floor(n_train / cf$batch) * cf$batch
    train_call <- function(epochs) {
      opts <- list(epochs = epochs, batch = cf$batch, patience = 1000, threads = th, lr = 1e-4,
                   clip = 5, seed = 1, verbose = 0L, average = 0.999, average2 = 0)
      s <- elapsed(res <- .Call(nbi:::C_r_train, spec, params, x, theta,
                                NULL, NULL, NULL, NULL, opts))
      if (res$status != 0) stop("training returned status ", res$status)
      s
    }
    train_call(1)  # first touch of the products' per-thread scratch, kept between calls
    setup <- min(vapply(seq_len(max(2L, repeats)), function(r) train_call(1), 0))
    train <- measure(function(epochs) max(train_call(epochs + 1) - setup, 1e-3), 1) *
      used_per_epoch
    sample <- measure(function(n) {
      elapsed(.Call(nbi:::C_r_model_sample, spec, params, x1, as.integer(n), 1, 1, th))
    }, 256, max_size = 5e6)
    logq <- measure(function(reps) {
      elapsed(for (r in seq_len(reps))
        .Call(nbi:::C_r_model_log_prob, spec, params, x_eval, theta_eval, 1, th))
    }, 1) * n_eval
    logq1 <- measure(function(reps) {
      elapsed(for (r in seq_len(reps))
        .Call(nbi:::C_r_model_log_prob, spec, params, x1, theta_eval, 1, th))
    }, 1) * n_eval
    set_blas_threads(th)  # the reference product runs on the BLAS's own threads
    gemm <- measure(function(reps) {
      elapsed(for (r in seq_len(reps)) a %*% b)
    }, 10) * 2 * cf$batch * cf$hidden * cf$hidden / 1e9
    rows[[length(rows) + 1]] <- data.frame(
      config = i, d = cf$d, ctx = cf$context, hid = cf$hidden, blk = cf$blocks,
      K = cf$mixture, batch = cf$batch, threads = th, precision = prec, params = np,
      `train/s` = train, setup = setup, `sample/s` = sample, `logq/s` = logq,
      `logq1/s` = logq1, gemm = gemm, `train GF` = train * 6 * W / 1e9,
      check.names = FALSE)
    cat(sprintf("  config %d, %s, %d thread(s) done (%.0f s so far)\n", i, prec, th,
                proc.time()[["elapsed"]] - t_start))
  }
}
set_blas_threads(max(thread_counts))
tab <- do.call(rbind, rows)

# PyTorch on the same shapes, after nbi (one python process per shape, every thread count)
ref <- torch_ref
ref$source <- sprintf("stored (%s)", torch_ref_cpu)
torch_runs <- list()
if (nzchar(torch_python)) for (i in seq_len(nrow(configs))) {
  r <- run_torch(configs[i, ])
  if (!is.null(r)) {
    torch_runs[[i]] <- r
    ref[i, c("train", "sample", "logq")] <- c(max(r$train), max(r$sample), max(r$logq))
    ref$source[i] <- "this run"
  }
  cat(sprintf("  config %d, PyTorch done (%.0f s so far)\n", i,
              proc.time()[["elapsed"]] - t_start))
}

fmt_rate <- function(v) formatC(round(v), format = "d", big.mark = ",")
fmt_ratio <- function(v) sprintf("%.2f", v)
ref_row <- ref[tab$config, ]
out <- data.frame(
  cfg = sprintf("%d: d=%d ctx=%d H=%d blk=%d K=%d B=%d", tab$config, tab$d, tab$ctx,
                tab$hid, tab$blk, tab$K, tab$batch),
  prec = sub("float", "f", tab$precision),
  thr = tab$threads,
  params = fmt_rate(tab$params),
  `train/s` = fmt_rate(tab$`train/s`), `/torch` = fmt_ratio(tab$`train/s` / ref_row$train),
  `setup s` = sprintf("%.2f", tab$setup),
  `sample/s` = fmt_rate(tab$`sample/s`), `/torch ` = fmt_ratio(tab$`sample/s` / ref_row$sample),
  `logq/s` = fmt_rate(tab$`logq/s`), `/torch  ` = fmt_ratio(tab$`logq/s` / ref_row$logq),
  `logq1/s` = fmt_rate(tab$`logq1/s`),
  `gemm GF/s` = sprintf("%.1f", tab$gemm), `train GF/s` = sprintf("%.1f", tab$`train GF`),
  check.names = FALSE)

cat("\nThroughput (samples per second; '/torch' = nbi / PyTorch reference)\n")
print(out, row.names = FALSE, right = TRUE)

nbi_params <- tab$params[match(seq_len(nrow(configs)), tab$config)]
if (length(torch_runs)) {
  tr <- do.call(rbind, lapply(seq_along(torch_runs), function(i)
    if (!is.null(torch_runs[[i]])) cbind(config = i, torch_runs[[i]])))
  cat(sprintf("\nPyTorch %s (float32, BLAS %s), this run (samples/s):\n", tr$torch[1], tr$blas[1]))
  print(data.frame(config = tr$config, threads = tr$threads, params = fmt_rate(tr$params),
                   `nbi params` = fmt_rate(nbi_params[tr$config]),
                   train = fmt_rate(tr$train), sample = fmt_rate(tr$sample),
                   logq = fmt_rate(tr$logq), check.names = FALSE), row.names = FALSE)
  if (any(tr$params != nbi_params[tr$config]))
    cat("WARNING: PyTorch's parameter count differs from nbi's for config(s)",
        paste(unique(tr$config[tr$params != nbi_params[tr$config]]), collapse = ", "), "\n")
}
cat("\nPyTorch reference used for '/torch' (samples/s; 'this run': the best over its threads):\n")
print(data.frame(config = seq_len(nrow(ref)), train = fmt_rate(ref$train),
                 sample = fmt_rate(ref$sample), logq = fmt_rate(ref$logq), source = ref$source),
      row.names = FALSE)
cat(sprintf("\ntotal %.0f s; load average at end: %s\n", proc.time()[["elapsed"]] - t_start,
            loadavg()))
