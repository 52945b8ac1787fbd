# A survey: 1,000 sine light curves from the prior, one surrogate, a posterior each.
#
#   Rscript bench/survey.R                  # after R CMD INSTALL .; about 30 minutes
#   NBI_BENCH_SMOKE=1 Rscript bench/survey.R   # seconds: every step at a toy size (CI)
#
# The sine model of inst/examples/sine.R (x(t) = A sin(omega t + phi0) + N(0, 0.1^2), 50
# points; featurizer_mlp, flow_maf(blocks = 5, hidden = 64)), a surrogate fitted on 20,000
# simulations, then for the same 1,000 observations drawn from the prior:
#   1. plain predict(n_samples = 2000): importance weights of the surrogate's draws;
#   2. predict(n_samples = 2000, n_eff = 1000): escalation of every object short of it;
#   3. a random-walk Metropolis baseline (mcmc::metrop) on the first NBI_SURVEY_MCMC
#      objects: started at the highest-weight draw of step 2, its Gaussian proposal scaled
#      on pilot runs (pilot steps are counted), then run until every parameter's bulk ESS
#      (posterior::ess_bulk) reaches the target, in likelihood calls per effective sample.
#      It is given its best chance (a start inside the posterior, a tuned proposal) and it
#      stays in the mode it starts in: its ESS counts one mode of the sine's two.
# Prints, for each: the fraction of objects with n_eff >= 1000 and Pareto k <= 0.7, the
# status counts, seconds per object (simulations included) and simulator (likelihood)
# calls per effective sample.
#
# Environment: NBI_SURVEY_N (objects, 1000), NBI_SURVEY_SIMS (training simulations,
# 20000), NBI_SURVEY_NEFF (1000), NBI_SURVEY_MCMC (objects for the baseline, 100),
# NBI_SURVEY_THREADS (2), NBI_SURVEY_OUT (a CSV path for the per-object table).
suppressPackageStartupMessages(library(nbi))
env <- function(k, default) { v <- Sys.getenv(k, ""); if (nzchar(v)) as.numeric(v) else default }
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
n_obj <- env("NBI_SURVEY_N", if (smoke) 8 else 1000)
n_sims <- env("NBI_SURVEY_SIMS", if (smoke) 1000 else 20000)
target <- env("NBI_SURVEY_NEFF", if (smoke) 200 else 1000)
n_mcmc <- env("NBI_SURVEY_MCMC", if (smoke) 2 else 100)
threads <- env("NBI_SURVEY_THREADS", 2)
n_samples <- if (smoke) 400 else 2000
epochs <- if (smoke) 3 else 100

t_grid <- seq(0, 1, length.out = 50)
sine <- function(theta) {
  theta <- matrix(theta, ncol = 3)
  theta[, 2] * sin(outer(theta[, 3], t_grid) + theta[, 1])
}
prior <- nbi_prior(phi0 = prior_uniform(0, 2 * pi), A = prior_uniform(-4, 4),
                   omega = prior_uniform(2 * pi, 12 * pi))
engine <- nbi_engine(sine, prior, featurizer = featurizer_mlp(hidden = c(128, 128), dim_out = 64),
                     flow = flow_maf(blocks = 5, hidden = 64, mixture = 4), noise = 0.1,
                     vectorized = TRUE, precision = "float32")
cat(sprintf("BLAS: %s | load average: %s\n", extSoftVersion()[["BLAS"]],
            paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
now <- function() proc.time()[["elapsed"]]
t0 <- now()
engine <- fit(engine, n_sims = n_sims, n_epochs = epochs, seed = 1, threads = threads,
              verbose = FALSE)
cat(sprintf("surrogate: %d simulations, %d epochs, best validation loss %.3f, %.0f s\n",
            n_sims, nrow(engine$history$epochs), min(engine$history$epochs$valid_loss),
            now() - t0))

set.seed(2026)
truth <- sample_prior(prior, n_obj)
x_obs <- sine(truth) + matrix(rnorm(n_obj * 50, sd = 0.1), n_obj)

report <- function(label, posts, seconds) {
  tab <- as.data.frame(posts)
  at <- tab$n_eff >= target & is.finite(tab$pareto_k) & tab$pareto_k <= 0.7
  st <- table(factor(tab$status, levels = c("ok", "short", "out_of_distribution")))
  cat(sprintf("%-22s objects at target %5.1f%% | ok %d, short %d, ood %d | s/object: median %.3f, mean %.3f (wall %.3f) | sims/object median %.0f | sims per effective sample %.2f | median n_eff %.0f\n",
              label, 100 * mean(at), st[["ok"]], st[["short"]], st[["out_of_distribution"]],
              stats::median(tab$seconds), mean(tab$seconds), seconds / nrow(tab),
              stats::median(tab$n_sims), sum(tab$n_sims) / sum(pmax(tab$n_eff, 0)),
              stats::median(tab$n_eff)))
  invisible(tab)
}

cat(sprintf("\n%d observations from the prior; target n_eff >= %d with Pareto k <= 0.7\n",
            n_obj, target))
t0 <- now()
plain <- suppressWarnings(predict(engine, x_obs, n_samples = n_samples, seed = 3,
                                  threads = threads))
tab_plain <- report("plain predict", plain, now() - t0)
t0 <- now()
esc <- suppressWarnings(predict(engine, x_obs, n_samples = n_samples, n_eff = target, seed = 3,
                                threads = threads))
tab_esc <- report(sprintf("predict(n_eff = %d)", target), esc, now() - t0)
rounds <- table(tab_esc$rounds)
cat("adaptive rounds per object:", paste(sprintf("%s: %d", names(rounds), rounds), collapse = ", "),
    "\n")
bad <- tab_esc[tab_esc$status != "ok", c("id", "n_eff", "pareto_k", "n_sims", "status", "ood_p")]
if (nrow(bad)) {
  cat("objects not ok:\n")
  print(utils::head(cbind(bad, truth[bad$id, , drop = FALSE]), 20), row.names = FALSE)
}
out <- Sys.getenv("NBI_SURVEY_OUT", "")
if (nzchar(out)) utils::write.csv(cbind(tab_esc, truth = truth), out, row.names = FALSE)

# ---- random-walk Metropolis baseline ----------------------------------------------------
if (n_mcmc > 0 && requireNamespace("mcmc", quietly = TRUE)) {
  lower <- c(0, -4, 2 * pi); upper <- c(2 * pi, 4, 12 * pi)
  rwm_one <- function(i) {
    x <- x_obs[i, ]
    calls <- 0
    lp <- function(th) {
      calls <<- calls + 1
      if (any(th < lower | th > upper)) return(-Inf)
      -0.5 * sum((x - th[2] * sin(th[3] * t_grid + th[1]))^2) / 0.01
    }
    # start at nbi's highest-weight draw, with a diagonal proposal of a tenth of its
    # posterior sds; pilot runs of 1,000 steps scale it to an acceptance rate in [0.15, 0.5],
    # then two more set it to 2.38^2 / d times the pilot chain's covariance (Roberts et al.)
    p <- esc[[i]]
    state <- p$theta[which.max(p$weights), ]
    sdw <- sqrt(colSums(p$weights * sweep(p$theta, 2, colSums(p$weights * p$theta))^2))
    scale <- diag(pmax(sdw, 1e-6) / 10, 3)
    for (pilot in 1:12) {
      run <- mcmc::metrop(lp, state, nbatch = 1000, scale = scale)
      state <- run$final
      if (run$accept < 0.15) scale <- scale / 3
      else if (run$accept > 0.5) scale <- scale * 2
      else break
    }
    for (pilot in 1:2) {
      run <- mcmc::metrop(lp, state, nbatch = 2000, scale = scale)
      state <- run$final
      S <- stats::cov(run$batch)
      R <- tryCatch(chol(S * 2.38^2 / 3), error = function(e) NULL)
      if (!is.null(R) && run$accept > 0.05) scale <- t(R)
    }
    draws <- NULL
    len <- 5000
    repeat {
      run <- mcmc::metrop(lp, state, nbatch = len, scale = scale)
      state <- run$final
      draws <- rbind(draws, run$batch)
      ess <- suppressWarnings(min(apply(draws, 2, posterior::ess_bulk)))
      if (!is.finite(ess)) ess <- 0
      if (ess >= target || nrow(draws) > 1e6) break
      len <- nrow(draws)
    }
    c(calls = calls, ess = ess)
  }
  t0 <- now()
  res <- t(vapply(seq_len(min(n_mcmc, n_obj)), rwm_one, numeric(2)))
  sec <- now() - t0
  cat(sprintf("%-22s %d objects: likelihood calls per effective sample: median %.1f, pooled %.1f | s/object %.3f | objects at target %.0f%%\n",
              "random-walk Metropolis", nrow(res), stats::median(res[, "calls"] / res[, "ess"]),
              sum(res[, "calls"]) / sum(res[, "ess"]), sec / nrow(res),
              100 * mean(res[, "ess"] >= target)))
  sub <- seq_len(nrow(res))
  cat(sprintf("%-22s same objects: simulator calls per effective sample: pooled %.2f\n",
              sprintf("predict(n_eff = %d)", target),
              sum(tab_esc$n_sims[sub]) / sum(tab_esc$n_eff[sub])))
} else if (n_mcmc > 0) {
  cat("random-walk Metropolis baseline skipped: install the 'mcmc' package\n")
}
