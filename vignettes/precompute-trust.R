# Precomputes everything shown in vignette("trust"): run from the package root with
#   Rscript vignettes/precompute-trust.R
# (about 4 minutes of CPU time on one core; 7 to 8.5 minutes of wall time on a busy 2-core machine).
# Writes vignettes/trust-results.rds, which the vignette loads.
library(nbi)
t_start <- proc.time()[["elapsed"]]
timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  v <- force(expr)
  list(value = v, seconds = proc.time()[["elapsed"]] - t0)
}

# ---- the problem: a Gaussian emission line in 40 pixels ---------------------------------
v <- seq(-195, 195, by = 10)                  # pixel centres, km/s
noise_sd <- 0.2                               # flux units, the same in every pixel
line <- function(theta) {                     # n x 3 parameters in, n x 40 spectra out
  theta <- matrix(theta, ncol = 3)
  theta[, 1] * exp(-0.5 * (outer(-theta[, 2], v, "+") / theta[, 3])^2)
}
prior <- nbi_prior(A = prior_uniform(0.5, 3), v0 = prior_uniform(-100, 100),
                   sigma = prior_uniform(15, 60))

# ---- the exact answer ------------------------------------------------------------------
# The model is linear in A, so for fixed (v0, sigma) the likelihood is a Gaussian in A and
# its integral over the uniform prior of A is a difference of two pnorm()s. What is left is
# a 2-D integral over (v0, sigma), done with the midpoint rule on a fine grid.
exact_line <- function(x, n_v0 = 1000, n_sigma = 500, A_lim = c(0.5, 3),
                       v0_lim = c(-100, 100), sigma_lim = c(15, 60), s = noise_sd) {
  v0 <- v0_lim[1] + (seq_len(n_v0) - 0.5) * diff(v0_lim) / n_v0
  sigma <- sigma_lim[1] + (seq_len(n_sigma) - 0.5) * diff(sigma_lim) / n_sigma
  n <- length(x)
  D <- outer(-v0, v, "+")
  log_m <- m_A <- sd_A <- matrix(0, n_v0, n_sigma)
  for (j in seq_len(n_sigma)) {
    G <- exp(-0.5 * (D / sigma[j])^2)          # line profiles of unit amplitude
    gg <- rowSums(G^2)
    gx <- drop(G %*% x)
    m <- gx / gg                               # best amplitude and its sd
    tau <- s / sqrt(gg)
    inside <- pnorm((A_lim[2] - m) / tau) - pnorm((A_lim[1] - m) / tau)
    log_m[, j] <- -(sum(x^2) - gx^2 / gg) / (2 * s^2) - n / 2 * log(2 * pi * s^2) +
      log(sqrt(2 * pi) * tau * inside / diff(A_lim))
    m_A[, j] <- m
    sd_A[, j] <- tau
  }
  top <- max(log_m)
  list(v0 = v0, sigma = sigma, log_m = log_m, m_A = m_A, sd_A = sd_A, A_lim = A_lim,
       log_evidence = top + log(mean(exp(log_m - top))))   # prior of (v0, sigma) is flat
}
# Exact posterior draws: a grid cell by its mass, a uniform point in it, then A from its
# truncated normal.
exact_draws <- function(g, n) {
  p <- exp(g$log_m - max(g$log_m))
  k <- sample.int(length(p), n, replace = TRUE, prob = p)
  i <- (k - 1) %% length(g$v0) + 1
  j <- (k - 1) %/% length(g$v0) + 1
  m <- g$m_A[k]
  tau <- g$sd_A[k]
  lo <- pnorm((g$A_lim[1] - m) / tau)
  hi <- pnorm((g$A_lim[2] - m) / tau)
  cbind(A = m + tau * qnorm(lo + runif(n) * (hi - lo)),
        v0 = g$v0[i] + (runif(n) - 0.5) * diff(g$v0[1:2]),
        sigma = g$sigma[j] + (runif(n) - 0.5) * diff(g$sigma[1:2]))
}
# Exact marginal densities on the grid (A: the mixture of truncated normals).
exact_marginals <- function(g, A = seq(g$A_lim[1], g$A_lim[2], length.out = 400)) {
  p <- exp(g$log_m - max(g$log_m))
  p <- p / sum(p)
  big <- which(p > 1e-7 * max(p))
  dA <- vapply(A, function(a) {
    m <- g$m_A[big]; tau <- g$sd_A[big]
    z <- pnorm((g$A_lim[2] - m) / tau) - pnorm((g$A_lim[1] - m) / tau)
    sum(p[big] * dnorm(a, m, tau) / z)
  }, numeric(1))
  list(A = list(x = A, y = dA / sum(p[big])),
       v0 = list(x = g$v0, y = rowSums(p) / diff(g$v0[1:2])),
       sigma = list(x = g$sigma, y = colSums(p) / diff(g$sigma[1:2])))
}
# the model on a fine velocity grid, 5/50/95% over posterior draws (for the plots)
model_band <- function(post, vv = seq(-200, 200, by = 2)) {
  th <- nbi_resample(post, 2000, seed = 1)$theta
  m <- th[, 1] * exp(-0.5 * (outer(-th[, 2], vv, "+") / th[, 3])^2)
  list(v = vv, q = apply(m, 2, quantile, c(0.05, 0.5, 0.95)))
}
chi2 <- function(post, x) sum(((x - drop(line(summary(post)$q50))) / noise_sd)^2)
diag_row <- function(post, exact, label) {
  data.frame(case = label, draws = nrow(post$theta), n_eff = post$n_eff,
             efficiency = post$efficiency, pareto_k = post$pareto_k,
             acceptance = post$acceptance,
             log_evidence = post$log_evidence, se = post$log_evidence_se,
             exact = exact$log_evidence,
             z = (post$log_evidence - exact$log_evidence) / post$log_evidence_se)
}
# weighted histogram densities of each parameter on fixed breaks (for the marginal plots)
hist_w <- function(theta, w = NULL, breaks) {
  if (is.null(w)) w <- rep(1 / nrow(theta), nrow(theta))
  lapply(setNames(colnames(theta), colnames(theta)), function(p) {
    b <- breaks[[p]]
    k <- findInterval(theta[, p], b, rightmost.closed = TRUE)   # 0 or length(b): outside
    mass <- tapply(w, factor(k, levels = seq_len(length(b) - 1)), sum)
    mass[is.na(mass)] <- 0
    list(breaks = b, density = as.numeric(mass) / sum(w) / diff(b))
  })
}
breaks_around <- function(m, n = 40) lapply(m, function(d) {
  keep <- d$x[d$y > 1e-3 * max(d$y)]
  r <- range(keep) + c(-0.15, 0.15) * diff(range(keep))
  seq(r[1], r[2], length.out = n + 1)
})
compact <- function(p) {                       # smaller rds; the same printed numbers
  p$x_obs <- NULL; p$log_q <- NULL; p$log_weights <- NULL
  p$theta <- signif(p$theta, 5)
  if (!is.null(p$weights)) p$weights <- signif(p$weights, 4)
  p
}

# ---- (1) an amortised engine -----------------------------------------------------------
engine0 <- nbi_engine(line, prior, featurizer = featurizer_mlp(hidden = c(128, 128), dim_out = 64),
                      flow = flow_maf(blocks = 5, hidden = 64, mixture = 4), noise = noise_sd,
                      vectorized = TRUE)
good <- timed(fit(engine0, n_sims = 20000, n_epochs = 100, batch_size = 128, lr = 1e-3,
                  patience = 20, seed = 1, verbose = FALSE))
engine <- good$value

# ---- (2) global calibration on 500 fresh prior simulations -----------------------------
cov_good <- timed(nbi_coverage(engine, n_test = 500, n_samples = 1000, seed = 2))
sbc_good <- timed(nbi_sbc(engine, n_test = 500, n_samples = 1000, seed = 2))

# ---- (3) one observation, checked against the exact answer -----------------------------
truth <- c(A = 1.2, v0 = 23, sigma = 30)
set.seed(3)
x_obs <- drop(line(truth)) + rnorm(40, sd = noise_sd)
post <- timed(predict(engine, x_obs, n_samples = 10000, seed = 4))
raw <- predict(engine, x_obs, n_samples = 10000, importance = FALSE, seed = 5)
ex <- exact_line(x_obs)
ex_marg <- exact_marginals(ex)
brk <- breaks_around(ex_marg)
set.seed(6)
ex_draws <- exact_draws(ex, 20000)
ex_summary <- data.frame(parameter = colnames(ex_draws), mean = colMeans(ex_draws),
                         sd = apply(ex_draws, 2, sd),
                         q5 = apply(ex_draws, 2, quantile, 0.05),
                         q50 = apply(ex_draws, 2, quantile, 0.5),
                         q95 = apply(ex_draws, 2, quantile, 0.95), row.names = NULL)

# the same checks on 50 fresh test spectra: is log Z right to within its standard error?
set.seed(7)
theta_test <- sample_prior(prior, 50)
x_test <- line(theta_test) + matrix(rnorm(50 * 40, sd = noise_sd), 50)
posts_test <- timed(predict(engine, x_test, n_samples = 5000, seed = 8))
test <- data.frame(theta_test,
  n_eff = vapply(posts_test$value, function(p) p$n_eff, 0),
  efficiency = vapply(posts_test$value, function(p) p$efficiency, 0),
  pareto_k = vapply(posts_test$value, function(p) p$pareto_k, 0),
  acceptance = vapply(posts_test$value, function(p) p$acceptance, 0),
  log_evidence = vapply(posts_test$value, function(p) p$log_evidence, 0),
  se = vapply(posts_test$value, function(p) p$log_evidence_se, 0),
  exact = apply(x_test, 1, function(x) exact_line(x)$log_evidence))
test$z <- (test$log_evidence - test$exact) / test$se

# ---- (4a) a bad engine: 300 simulations, 20 epochs --------------------------------------
bad <- timed(fit(engine0, n_sims = 300, n_epochs = 20, seed = 9, verbose = FALSE))
bad_engine <- bad$value
cov_bad <- nbi_coverage(bad_engine, n_test = 500, n_samples = 1000, seed = 2)
sbc_bad <- nbi_sbc(bad_engine, n_test = 500, n_samples = 1000, seed = 2)
post_bad_10k <- predict(bad_engine, x_obs, n_samples = 10000, seed = 4)
post_bad_100k <- timed(predict(bad_engine, x_obs, n_samples = 100000, seed = 4))
post_bad_t2 <- predict(bad_engine, x_obs, n_samples = 10000, seed = 4, temper = 2)
post_bad_adapt <- timed(predict(bad_engine, x_obs, n_samples = 10000, seed = 4, adapt = 4))
raw_bad <- predict(bad_engine, x_obs, n_samples = 10000, importance = FALSE, seed = 5)

# ---- (4b) the good engine on spectra it was not trained for -----------------------------
# a line broader than the prior allows (sigma = 110 km/s), in 10 noise realisations
truth_broad <- c(A = 1, v0 = -20, sigma = 110)
set.seed(10)
x_broad <- line(truth_broad)[rep(1, 10), ] + matrix(rnorm(10 * 40, sd = noise_sd), 10)
posts_broad <- predict(engine, x_broad, n_samples = 10000, seed = 4)
posts_broad_t2 <- predict(engine, x_broad, n_samples = 10000, seed = 4, temper = 2)
ex_broad <- apply(x_broad, 1, function(x) exact_line(x)$log_evidence)
# a cosmic-ray hit in one pixel of the first spectrum
x_ray <- x_obs
x_ray[12] <- x_ray[12] + 2.5
post_ray <- predict(engine, x_ray, n_samples = 10000, seed = 4)
ex_ray <- exact_line(x_ray)
# a line twice as bright as the brightest in the training set
set.seed(15)
x_bright <- drop(line(c(A = 6, v0 = 10, sigma = 30))) + rnorm(40, sd = noise_sd)
bright_error <- tryCatch({predict(engine, x_bright, n_samples = 10000, seed = 4); NA_character_},
                         error = conditionMessage)

# ---- (5) C2ST against exact draws (1,000 of each) ---------------------------------------
c2 <- function(a) as.numeric(nbi_c2st(a, ex_draws[1:1000, ], seed = 11))
c2st <- data.frame(
  engine = c("20,000 sims", "20,000 sims", "300 sims", "300 sims"),
  draws = c("surrogate q(theta | x)", "importance-weighted, resampled",
            "surrogate q(theta | x)", "importance-weighted (100,000), resampled"),
  accuracy = c(c2(raw$theta[1:1000, ]), c2(nbi_resample(post$value, 1000, seed = 12)$theta),
               c2(raw_bad$theta[1:1000, ]),
               c2(nbi_resample(post_bad_100k$value, 1000, seed = 12)$theta)))
c2st <- rbind(c2st, data.frame(engine = "300 sims", draws = "adaptive IS (4 rounds), resampled",
                               accuracy = c2(nbi_resample(post_bad_adapt$value, 1000, seed = 12)$theta)))
set.seed(13)
c2st_null <- as.numeric(nbi_c2st(exact_draws(ex, 1000), ex_draws[1:1000, ], seed = 11))

# ---- collect ---------------------------------------------------------------------------
diagnostics <- rbind(
  diag_row(post$value, ex, "20,000 sims"),
  diag_row(post_bad_10k, ex, "300 sims"),
  diag_row(post_bad_100k$value, ex, "300 sims, 100,000 draws"),
  diag_row(post_bad_t2, ex, "300 sims, temper = 2"),
  diag_row(post_ray, ex_ray, "cosmic ray"),
  diag_row(post_bad_adapt$value, ex, "300 sims, adapt = 4"))
diagnostics$chi2 <- c(chi2(post$value, x_obs), chi2(post_bad_10k, x_obs),
                      chi2(post_bad_100k$value, x_obs), chi2(post_bad_t2, x_obs),
                      chi2(post_ray, x_ray), chi2(post_bad_adapt$value, x_obs))
broad_rows <- function(posts, label) do.call(rbind, lapply(seq_along(posts), function(i) {
  r <- diag_row(posts[[i]], list(log_evidence = ex_broad[i]), label)
  r$chi2 <- chi2(posts[[i]], x_broad[i, ])
  r
}))
broad <- rbind(broad_rows(posts_broad, "temper = 1"), broad_rows(posts_broad_t2, "temper = 2"))
strip_cal <- function(obj) { obj$theta <- NULL; obj }
marginals <- list(
  exact = ex_marg,
  good_is = hist_w(post$value$theta, post$value$weights, brk),
  good_raw = hist_w(raw$theta, NULL, brk),
  bad_is = hist_w(post_bad_100k$value$theta, post_bad_100k$value$weights, brk),
  bad_raw = hist_w(raw_bad$theta, NULL, brk))
grid_check <- c(coarse = exact_line(x_obs, 500, 250)$log_evidence,
                fine = exact_line(x_obs, 2000, 1000)$log_evidence)
bands <- list(good = model_band(post$value), broad = model_band(posts_broad_t2[[1]]),
              ray = model_band(post_ray))
seconds <- proc.time()[["elapsed"]] - t_start
cpu <- proc.time()
cpu_seconds <- sum(cpu[c("user.self", "sys.self", "user.child", "sys.child")], na.rm = TRUE)
res <- list(
  v = v, noise_sd = noise_sd, truth = truth, x_obs = x_obs,
  fit_seconds = good$seconds, epochs = engine$history$epochs,
  coverage = strip_cal(cov_good$value), sbc = strip_cal(sbc_good$value),
  calibration_seconds = cov_good$seconds + sbc_good$seconds,
  posterior = compact(post$value), band = bands$good, predict_seconds = post$seconds,
  exact_summary = ex_summary, exact_log_evidence = ex$log_evidence,
  exact_log_evidence_coarse = grid_check[["coarse"]],
  exact_log_evidence_fine = grid_check[["fine"]],
  marginals = marginals, test = test, test_seconds = posts_test$seconds,
  bad = list(fit_seconds = bad$seconds, epochs = bad_engine$history$epochs,
             coverage = strip_cal(cov_bad), sbc = strip_cal(sbc_bad),
             predict_100k_seconds = post_bad_100k$seconds,
             adapt_seconds = post_bad_adapt$seconds,
             adapt_n_eff = post_bad_adapt$value$rounds$n_eff),
  broad = list(truth = truth_broad, x_obs = x_broad[1, ], table = broad,
               summary = summary(posts_broad_t2[[1]]), band = bands$broad),
  ray = list(x_obs = x_ray, summary = summary(post_ray), band = bands$ray),
  bright_error = bright_error,
  diagnostics = diagnostics, c2st = c2st, c2st_null = c2st_null,
  made_with = as.character(utils::packageVersion("nbi")),
  seconds = seconds, cpu_seconds = cpu_seconds, cores = parallel::detectCores())
saveRDS(res, "vignettes/trust-results.rds", compress = "xz")
cat(sprintf("done in %.0f s (%.0f s of CPU)\n", seconds, cpu_seconds))
