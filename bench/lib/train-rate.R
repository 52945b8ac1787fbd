# Shared by the benches: training samples per second of nbi's trainer (the C entry point
# fit() uses: forward + backward + Adam through featurizer and flow) in steady state, the
# time of 1 + E epochs less that of 1 (so set-up, scaling and the first epoch's allocations
# are not counted), E grown until the difference takes about half of `target` seconds.
train_rate <- function(spec, x, theta, batch, threads, target) {
  params <- nbi:::model_init(spec, 1)
  run <- function(epochs) {
    t0 <- proc.time()[["elapsed"]]
    res <- nbi:::with_blas_threads(1L,
      .Call(nbi:::C_r_train, spec, params, x, theta, NULL, NULL, NULL, NULL,
            list(epochs = epochs, batch = batch, patience = 1000, threads = threads, lr = 1e-4,
                 clip = 5, seed = 1, verbose = 0L, average = 0.999, average2 = 0)))
    stopifnot(res$status == 0)
    proc.time()[["elapsed"]] - t0
  }
  one <- run(1)
  epochs <- 1
  repeat {
    s <- run(1 + epochs) - one
    if (s >= 0.5 * target || epochs > 1e4) break
    epochs <- ceiling(epochs * min(20, 1.1 * target / max(s, 1e-3)))
  }
  epochs * floor(ncol(x) / batch) * batch / max(s, 1e-9)
}

