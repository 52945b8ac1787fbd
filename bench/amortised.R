# Batched amortised prediction: 10,000 observations x 1,000 posterior draws each.
#
#   Rscript bench/amortised.R          # after R CMD INSTALL .
#
# A linear-Gaussian problem (d = 5 parameters, observations of length 20) with
# featurizer_mlp and the default flow_maf, trained briefly (the timing does not depend on
# the fit's quality). predict() on a 10,000 x 20 matrix returns an nbi_posterior_list; all
# draws come from batched C calls (features once per observation, the flow in chunks of
# whole observations). Prints the wall time and draws per second at 1 and 2 threads.
# NBI_BENCH_SMOKE=1: 200 observations x 50 draws (seconds: CI checks the script runs).
suppressPackageStartupMessages(library(nbi))
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
set.seed(1)
d <- 5; p <- 20
A <- matrix(rnorm(p * d), p, d) / sqrt(d)
sim <- function(theta) drop(A %*% theta)
prior <- do.call(nbi_prior, setNames(rep(list(prior_normal(0, 1)), d), paste0("theta", 1:d)))
engine <- nbi_engine(sim, prior, featurizer = featurizer_mlp(), flow = flow_maf(), noise = 0.1)
theta <- sample_prior(prior, if (smoke) 500 else 5000)
x <- t(A %*% t(theta))
engine <- fit(engine, theta = theta, x = x, n_epochs = 3, verbose = FALSE)

n_obs <- if (smoke) 200 else 10000
n_draws <- if (smoke) 50 else 1000
obs <- t(A %*% t(sample_prior(prior, n_obs))) + matrix(rnorm(n_obs * p, sd = 0.1), n_obs)
cat(sprintf("BLAS: %s\nload average: %s\n", extSoftVersion()[["BLAS"]],
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
cat(sprintf("%d observations x %d draws (featurizer_mlp, flow_maf(): %d blocks, %d hidden)\n",
            n_obs, n_draws, engine$flow$blocks, engine$flow$hidden))
for (prec in c("float64", "float32")) for (th in 1:2) {
  engine$precision <- prec
  t0 <- proc.time()[["elapsed"]]
  post <- predict(engine, obs, n_samples = n_draws, importance = FALSE, threads = th)
  sec <- proc.time()[["elapsed"]] - t0
  cat(sprintf("%s, threads %d: %.2f s  (%.0f draws/s)  [%d posteriors, %d draws each]\n",
              prec, th, sec, n_obs * n_draws / sec, length(post), nrow(post[[1]]$theta)))
}
