# Checks of the reference-posterior samplers of inst/bench/sbibm_tasks.R.
#
#   Rscript bench/check_reference.R          # after R CMD INSTALL .
#
# For each task and observation, with 10,000 draws per sample (NBI_REF_NDRAWS):
#   c2st_self   C2ST between two independent samples of our reference sampler: the value
#               the C2ST gives for identical distributions at this sample size (~0.5);
#   c2st_sir    C2ST of our reference draws against sampling-importance-resampling from
#               the prior with the task's closed-form likelihood (checks the likelihood
#               that the importance weights of bench/accuracy.R use, and the sampler);
#               n_eff_sir is the effective sample size of those prior-proposal weights
#               (skipped for slcp, where prior proposals are far too inefficient);
#   c2st_sbibm  C2ST against sbibm's own stored reference draws
#               (<dir>/<task>/num_observation_<k>/reference_posterior_samples.csv.bz2
#               under NBI_SBIBM_REF, e.g. the sbibm/tasks folder of a sbibm checkout),
#               when that folder is given;
# plus, for slcp, the diagnostics of the grid-mixture proposal (n_eff fraction, largest
# weight over the mean, acceptance rate, bound violations).
# Environment: NBI_REF_TASKS (comma-separated), NBI_REF_NOBS (default 10),
# NBI_REF_NDRAWS (10000), NBI_REF_NSIR (prior proposals for SIR, default 4e6),
# NBI_SBIBM_REF (folder, optional). Writes bench/check_reference.csv (NBI_REF_APPEND=1:
# appends to it). NBI_BENCH_SMOKE=1: seconds (one task and observation, small samples),
# written to a temporary folder (CI checks that the script runs).
suppressPackageStartupMessages(library(nbi))
tasks_file <- file.path("inst", "bench", "sbibm_tasks.R")  # from the source root, else installed
if (!file.exists(tasks_file)) tasks_file <- system.file("bench", "sbibm_tasks.R", package = "nbi")
source(tasks_file)  # also defines bench_env() and bench_script_dir()
smoke <- identical(Sys.getenv("NBI_BENCH_SMOKE"), "1")
if (smoke) Sys.setenv(NBI_REF_TASKS = "gaussian_linear", NBI_REF_NOBS = "1",
                      NBI_REF_NDRAWS = "300", NBI_REF_NSIR = "20000")

tasks <- strsplit(bench_env("NBI_REF_TASKS", paste(sbibm_task_names, collapse = ",")), ",")[[1]]
n_obs <- as.integer(bench_env("NBI_REF_NOBS", "10"))
n_draws <- as.integer(bench_env("NBI_REF_NDRAWS", "10000"))
n_sir <- as.numeric(bench_env("NBI_REF_NSIR", "4e6"))
sbibm_dir <- bench_env("NBI_SBIBM_REF", "")
out_csv <- file.path(if (smoke) tempdir() else bench_script_dir(), "check_reference.csv")
old_rows <- if (bench_env("NBI_REF_APPEND", "0") == "1" && file.exists(out_csv)) utils::read.csv(out_csv) else NULL

# SIR from the prior in chunks: log weights = log-likelihood, then systematic resampling.
prior_sir <- function(task, x_obs, n_prop, n_out, chunk = 5e5) {
  th <- list()
  lw <- list()
  for (i in seq_len(ceiling(n_prop / chunk))) {
    t <- sample_prior(task$prior, chunk)
    l <- task$log_lik(x_obs, t)
    # keep only proposals that can matter: weights within exp(-30) of the chunk's largest
    # (the overall largest is at least as large, so nothing dropped has weight > e^-30)
    keep <- l > max(l) - 30
    th[[i]] <- t[keep, , drop = FALSE]
    lw[[i]] <- l[keep]
  }
  th <- do.call(rbind, th)
  lw <- unlist(lw)
  w <- exp(lw - max(lw))
  n_eff <- sum(w)^2 / sum(w^2)
  cw <- cumsum(w) / sum(w)
  idx <- findInterval((stats::runif(1) + 0:(n_out - 1)) / n_out, cw, left.open = TRUE) + 1L
  idx <- pmin(idx, length(w))
  list(theta = unname(th[idx[sample.int(n_out)], , drop = FALSE]), n_eff = n_eff,
       unique = length(unique(idx)))
}

rows <- list()
set.seed(20240601)
for (nm in tasks) {
  task <- sbibm_task(nm)
  for (k in seq_len(n_obs)) {
    x <- task$observations[k, ]
    t0 <- proc.time()[["elapsed"]]
    ref <- task$reference(x, n_draws)
    ref_s <- proc.time()[["elapsed"]] - t0
    info <- attr(ref, "info")
    ref2 <- task$reference(x, n_draws)
    c_self <- nbi_c2st(ref, ref2, seed = k)
    c_sir <- n_eff_sir <- NA_real_
    if (nm != "slcp") {
      s <- prior_sir(task, x, n_sir, n_draws)
      n_eff_sir <- s$n_eff
      c_sir <- nbi_c2st(ref, s$theta, seed = k)
    }
    c_sb <- NA_real_
    if (nzchar(sbibm_dir)) {
      f <- file.path(sbibm_dir, nm, sprintf("num_observation_%d", k),
                     "reference_posterior_samples.csv.bz2")
      if (file.exists(f)) {
        sb <- unname(as.matrix(utils::read.csv(bzfile(f))))
        c_sb <- nbi_c2st(ref, sb[seq_len(min(nrow(sb), n_draws)), , drop = FALSE], seed = k)
      }
    }
    row <- data.frame(task = nm, obs = k, ref_seconds = round(ref_s, 2),
                      acceptance = if (is.null(info$acceptance)) NA else round(info$acceptance, 3),
                      c2st_self = round(as.numeric(c_self), 3),
                      c2st_sir = round(as.numeric(c_sir), 3), n_eff_sir = round(n_eff_sir),
                      c2st_sbibm = round(as.numeric(c_sb), 3),
                      slcp_neff_frac = if (is.null(info$n_eff_fraction)) NA else round(info$n_eff_fraction, 3),
                      slcp_wmax_mean = if (is.null(info$max_weight_over_mean)) NA else round(info$max_weight_over_mean, 2),
                      slcp_violations = if (is.null(info$bound_violations)) NA else info$bound_violations,
                      slcp_w_over_M = if (is.null(info$largest_weight_over_bound)) NA else round(info$largest_weight_over_bound, 3))
    print(row, row.names = FALSE)
    rows[[length(rows) + 1L]] <- row
  }
}
res <- do.call(rbind, rows)
cat("\nAll rows:\n")
print(res, row.names = FALSE)
utils::write.csv(rbind(old_rows, res), out_csv, row.names = FALSE)
cat("written:", out_csv, "\n")
