# Training throughput and memory of featurizer_timeseries() on irregular light curves, next
# to featurizer_resnet_gru() on regular grids of the same lengths.
#
#   Rscript bench/timeseries.R        # after R CMD INSTALL .
#   NBI_BENCH_SECONDS=5 Rscript bench/timeseries.R
#
# For curves of 100, 400 and 1,000 epochs (t, value, error; every curve of the batch its own
# epochs) it prints training samples (curves) per second: forward + backward + Adam through
# featurizer and flow, the C entry point fit() uses, in steady state (time of 1 + E epochs
# less that of 1), at 2 threads, in float64 and float32 products; "rows/s" is epochs of
# light curve per second. "MiB/batch" is the scratch memory the trainer takes for a batch of
# 128 curves; the time-series featurizer is sized by the rows the data's batches can hold, so
# on curves of 20% to 100% of the length it takes less than on full-length ones (no padding). The ResNet-GRU reads the same curves resampled on a regular grid of the same
# length (2 channels: value, error) at its defaults (3 blocks, 32..256 channels, 2 GRU layers).
# Both feed the same flow (5 blocks x 64 hidden, 4 components, d = 3).
suppressPackageStartupMessages(library(nbi))
here <- local({   # this script's folder, for bench/lib and bench/reference
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
  if (is.na(f)) "bench" else dirname(f)
})
source(file.path(here, "lib", "train-rate.R"))   # train_rate()
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
target <- as.numeric(Sys.getenv("NBI_BENCH_SECONDS", if (smoke) "0.01" else "3"))
threads <- 2L

mib <- function(spec, x, batch) {
  8 * .Call(nbi:::C_r_model_train_work, spec, x, as.integer(batch), threads) / 2^20
}

set.seed(1)
cat("nbi time-series featurizer benchmark |", R.version.string, "| BLAS:",
    extSoftVersion()[["BLAS"]], "\n")
d <- 3
batch <- 128
n <- if (smoke) 256 else 1024
flow <- flow_maf(blocks = 5, hidden = 64, mixture = 4)
ts_feat <- featurizer_timeseries()
print(ts_feat)
rg_feat <- featurizer_resnet_gru(channels = 2)
print(rg_feat)
theta <- matrix(rnorm(d * n), d, n)
out <- NULL
for (L in c(100L, 400L, 1000L)) {
  curves <- lapply(seq_len(n), function(i) {
    t <- sort(runif(L, 0, 2000))
    cbind(t, sin(t / 50) + rnorm(L, 0, 0.1), runif(L, 0.05, 0.2))
  })
  sc <- nbi:::fit_input_scale(curves, ts_feat)
  x_ts <- nbi:::encode_input(curves, sc, ts_feat, L)
  ts_spec <- nbi:::model_spec(ts_feat, flow, n_in = nrow(x_ts), d = d,
                              feat = nbi:::ts_spec(ts_feat, L, 3L, nbi:::ts_freqs(curves, sc, 8)))
  # the same curves on a grid of L points (value, error interleaved: position-major)
  x_rg <- vapply(curves, function(s) {
    g <- seq(0, 2000, length.out = L)
    as.vector(rbind(stats::approx(s[, 1], s[, 2], g, rule = 2)$y, stats::approx(s[, 1], s[, 3], g, rule = 2)$y))
  }, numeric(2 * L))
  rg_spec <- nbi:::model_spec(rg_feat, flow, n_in = 2 * L, d = d)
  # memory: the same featurizer on curves of 20%..100% of L epochs
  short <- lapply(curves, function(s) s[seq_len(max(3, round(nrow(s) * runif(1, 0.2, 1)))), , drop = FALSE])
  x_short <- nbi:::encode_input(short, sc, ts_feat, L)
  for (prec in c("float64", "float32")) {
    ts_spec$precision <- rg_spec$precision <- prec
    r_ts <- train_rate(ts_spec, x_ts, theta, batch, threads, target)
    r_rg <- train_rate(rg_spec, x_rg, theta, batch, threads, target)
    out <- rbind(out, data.frame(
      epochs = L, precision = prec,
      `timeseries curves/s` = round(r_ts), `rows/s` = round(r_ts * L),
      `resnet_gru curves/s` = round(r_rg), ratio = round(r_ts / r_rg, 2),
      `ts MiB/batch` = round(mib(ts_spec, x_ts, batch), 1),
      `ts MiB, 20-100% length` = round(mib(ts_spec, x_short, batch), 1),
      `rg MiB/batch` = round(mib(rg_spec, x_rg, batch), 1), check.names = FALSE))
  }
}
cat(sprintf("threads %d, batch %d, %d curves | load average: %s\n", threads, batch, n,
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
print(out, row.names = FALSE)
