# Four tasks of the simulation-based inference benchmark (sbibm; Lueckmann et al. 2021,
# "Benchmarking simulation-based inference", AISTATS), re-implemented in plain R from the
# task definitions of github.com/sbi-benchmark/sbibm (sbibm/tasks/<task>/task.py), with
# sbibm's ten fixed observations per task, and a reference-posterior sampler for each.
#
# Used by bench/accuracy.R (the full accuracy benchmark) and by
# tests/testthat/test-accuracy.R (a reduced version), which source this file through
#   source(system.file("bench", "sbibm_tasks.R", package = "nbi"))
# after library(nbi). Only base R, stats and nbi's exported functions are used.
#
# A task is a list made by sbibm_task(name):
#   name, dim_theta, dim_x
#   prior         an nbi_prior (parameters theta1, theta2, ...)
#   simulate      function(theta): n x dim_theta matrix -> n x dim_x matrix (one row per
#                 simulation; R's random number generator)
#   log_lik       function(x_obs, theta): log p(x_obs | theta) for each row of theta,
#                 exact and normalised (the density of the simulator's output)
#   reference     function(x_obs, n): n draws from the exact posterior, an n x dim_theta
#                 matrix; attribute "info" (a list) says how they were made and checked
#   observations  10 x dim_x matrix: sbibm's num_observation_1 .. num_observation_10
#                 (observation.csv of each task, as stored in the sbibm repository)
#   flow, featurizer  the networks bench/accuracy.R uses for this task
#
# sbibm_engine(task) wraps a task in an nbi_engine with a vectorised simulator and the
# exact likelihood; sbibm_accuracy() fits one budget and scores it against the reference.

# ---------------------------------------------------------------------------------------
# Published numbers
# ---------------------------------------------------------------------------------------

# sbibm's NPE C2ST (mean over its 10 observations; Lueckmann et al. 2021, Fig. 2 and the
# sbibm results) at 10^3 / 10^4 / 10^5 simulations.
sbibm_published_npe <- data.frame(
  task = rep(c("gaussian_linear", "two_moons", "gaussian_mixture", "slcp"), each = 3),
  budget = rep(c(1e3, 1e4, 1e5), 4),
  c2st_sbibm_npe = c(0.695, 0.552, 0.506,
                     0.725, 0.606, 0.542,
                     0.716, 0.615, 0.548,
                     0.975, 0.901, 0.832)
)

# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------

# log(exp(a) + exp(b)) elementwise, stable.
sbibm_logaddexp <- function(a, b) {
  m <- pmax(a, b)
  ifelse(is.finite(m), m + log(exp(a - m) + exp(b - m)), m)
}

# A matrix with one row per parameter set, named theta1..thetad.
sbibm_theta_matrix <- function(theta, d) {
  if (is.null(dim(theta))) theta <- matrix(theta, ncol = d)
  storage.mode(theta) <- "double"
  theta
}

# Draw with replacement from a finite pool until `n` accepted rows are collected:
# `propose(k)` returns a matrix of k candidate rows, `accept(m)` a logical vector.
# Returns the first n accepted rows and the acceptance rate.
sbibm_rejection <- function(n, propose, accept, batch = 4L * n + 1000L, max_tries = 1e9) {
  out <- list()
  got <- 0L
  tried <- 0
  while (got < n) {
    cand <- propose(batch)
    ok <- accept(cand)
    tried <- tried + batch
    if (any(ok)) {
      out[[length(out) + 1L]] <- cand[ok, , drop = FALSE]
      got <- got + sum(ok)
    }
    if (tried > max_tries) stop("rejection sampler: acceptance rate too low", call. = FALSE)
  }
  draws <- do.call(rbind, out)[seq_len(n), , drop = FALSE]
  attr(draws, "acceptance") <- got / tried
  draws
}

# ---------------------------------------------------------------------------------------
# gaussian_linear: theta ~ N(0, 0.1 I_10), x | theta ~ N(theta, 0.1 I_10) (covariances,
# as in sbibm: prior_scale = simulator_scale = 0.1 enter as covariance matrices). The
# posterior is Gaussian: covariance (1/0.1 + 1/0.1)^-1 I = 0.05 I, mean x / 2.
# ---------------------------------------------------------------------------------------

sbibm_obs_gaussian_linear <- matrix(c(
  1.0471346, 0.5566712, -0.23618454, 0.027879834, -1.0051446, -0.007930746, 0.06117077, -0.29286885, -0.38539964, 0.2449614,
  -0.106687605, -0.8015651, -0.07332335, 0.4009537, 0.62297356, -0.18687348, 0.7087778, 0.1921165, 0.6718195, 0.097826496,
  0.46684834, -1.0391812, -0.4221986, -0.043471217, 0.06795333, 0.44685173, 0.034785576, -0.48691356, -0.14388148, -0.60066223,
  0.26986307, -0.8764679, -0.80710757, -0.62243676, -0.29644397, 0.18969943, -1.2106322, 0.080149904, -0.05710575, -0.6485255,
  0.086261556, 0.23511642, -0.12244874, -0.23736775, -0.14382003, -0.59807384, 0.5410164, 0.35587752, 0.45564276, 0.33464402,
  0.303608, 0.09702572, 0.4143386, -0.6286805, -0.10541348, 0.2423679, -0.27078122, 0.6748003, -0.29908583, -0.23966554,
  -0.54149276, 0.15401167, -0.53614, 0.15069558, -0.15211618, -0.21718031, -0.39777136, -0.0935701, -0.76762325, 0.66795474,
  -0.16127616, -1.227219, -0.094550796, 0.16520452, 0.62588596, 0.31528804, -1.0753651, 0.1274876, -0.31232044, -0.6503956,
  -0.2497777, -0.27713263, -0.34482944, 0.5036805, 0.75670123, 0.8884809, 0.047073513, -0.2576767, -0.45802453, -0.16742781,
  0.43484968, 0.5951628, 0.24885634, 0.6911342, -0.80032897, 0.5683282, -0.23501486, 0.4710286, 0.3702978, -0.88694054
), nrow = 10, byrow = TRUE)

sbibm_gaussian_linear <- function() {
  d <- 10L
  v <- 0.1  # prior and noise variance
  list(
    name = "gaussian_linear", dim_theta = d, dim_x = d,
    prior = nbi_prior(theta = prior_normal(rep(0, d), sqrt(v))),
    simulate = function(theta) {
      theta <- sbibm_theta_matrix(theta, d)
      theta + matrix(stats::rnorm(length(theta), sd = sqrt(v)), nrow(theta))
    },
    log_lik = function(x_obs, theta) {
      theta <- sbibm_theta_matrix(theta, d)
      r <- t(t(theta) - x_obs)
      -0.5 * rowSums(r^2) / v - 0.5 * d * log(2 * pi * v)
    },
    reference = function(x_obs, n) {
      # exact: N(x / 2, 0.05 I)
      draws <- matrix(stats::rnorm(n * d, mean = rep(x_obs / 2, each = n), sd = sqrt(v / 2)), n)
      attr(draws, "info") <- list(method = "analytic Gaussian N(x/2, 0.05 I)")
      draws
    },
    observations = sbibm_obs_gaussian_linear,
    # a linear-Gaussian posterior: one Gaussian component per dimension and a smooth
    # activation (chosen on observations 1-3 at 10^4; see bench/RESULTS.md)
    flow = flow_maf(blocks = 5, hidden = 64, mixture = 1, activation = "tanh"),
    featurizer = featurizer_identity()
  )
}

# ---------------------------------------------------------------------------------------
# two_moons: theta ~ U(-1, 1)^2; a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2),
# p = (r cos a + 0.25, r sin a); x = p + (-|z0|, z1) with z0 = (theta1 + theta2) / sqrt(2),
# z1 = (-theta1 + theta2) / sqrt(2) (sbibm's rotation by -pi/4).
#
# Likelihood (change of variables from (r, a) to p: Jacobian 1 / r, a has density 1 / pi):
# with u = x1 + |z0| - 0.25, v = x2 - z1, rho = sqrt(u^2 + v^2),
#   p(x | theta) = N(rho; 0.1, 0.01^2) / (pi rho)  for u > 0, else 0
# (sbibm's `_likelihood` leaves out the 1 / (pi rho) factor; its reference draws do not
# use it.) The r < 0 branch of the normal has mass ~1e-23 and is ignored, as in sbibm.
#
# Reference draws: exact, by inverting the simulator (the construction sbibm also uses).
# theta -> (|z0|, z1) is a rotation followed by a fold, so on each half-plane z0 > 0 and
# z0 < 0 it is an isometry, and p(theta | x) = 1_box(theta) p_noise(x - f(theta)) / Z.
# Draw the noise p ~ p_noise (a, r as in the simulator), set |z0| = p1 - x1 (rejecting the
# draw if negative: no theta produces it), z1 = x2 - p2, give z0 a random sign, rotate
# back, and reject draws outside the prior box. Every accepted draw is an exact posterior
# draw. check_reference.R compares them with sampling-importance-resampling from the
# prior with the closed-form likelihood above and with sbibm's stored reference draws.
# ---------------------------------------------------------------------------------------

sbibm_obs_two_moons <- matrix(c(
  -0.6396706, 0.16234657,
  -0.5676688, -0.33194834,
  0.0030109584, -0.6457662,
  -0.25049388, 0.633055,
  -0.66463584, -0.42604533,
  -0.12940255, 0.3873573,
  0.19458583, 1.0400153,
  0.13603824, 0.9160449,
  -0.17962828, -0.5452459,
  0.14563406, -1.170141
), nrow = 10, byrow = TRUE)

sbibm_two_moons <- function() {
  list(
    name = "two_moons", dim_theta = 2L, dim_x = 2L,
    prior = nbi_prior(theta = prior_uniform(c(-1, -1), c(1, 1))),
    simulate = function(theta) {
      theta <- sbibm_theta_matrix(theta, 2)
      n <- nrow(theta)
      a <- stats::runif(n, -pi / 2, pi / 2)
      r <- stats::rnorm(n, 0.1, 0.01)
      z0 <- (theta[, 1] + theta[, 2]) / sqrt(2)
      z1 <- (-theta[, 1] + theta[, 2]) / sqrt(2)
      cbind(r * cos(a) + 0.25 - abs(z0), r * sin(a) + z1)
    },
    log_lik = function(x_obs, theta) {
      theta <- sbibm_theta_matrix(theta, 2)
      z0 <- (theta[, 1] + theta[, 2]) / sqrt(2)
      z1 <- (-theta[, 1] + theta[, 2]) / sqrt(2)
      u <- x_obs[1] + abs(z0) - 0.25
      v <- x_obs[2] - z1
      rho <- sqrt(u^2 + v^2)
      ll <- stats::dnorm(rho, 0.1, 0.01, log = TRUE) - log(pi) - log(rho)
      ll[!(u > 0)] <- -Inf
      ll
    },
    reference = function(x_obs, n) {
      draws <- sbibm_rejection(n, propose = function(k) {
        a <- stats::runif(k, -pi / 2, pi / 2)
        r <- stats::rnorm(k, 0.1, 0.01)
        abs_z0 <- r * cos(a) + 0.25 - x_obs[1]
        z0 <- ifelse(stats::runif(k) < 0.5, -1, 1) * abs_z0
        z1 <- x_obs[2] - r * sin(a)
        cbind((z0 - z1) / sqrt(2), (z0 + z1) / sqrt(2), abs_z0)
      }, accept = function(m) m[, 3] >= 0 & abs(m[, 1]) <= 1 & abs(m[, 2]) <= 1)
      acc <- attr(draws, "acceptance")
      draws <- draws[, 1:2, drop = FALSE]
      attr(draws, "info") <- list(method = "exact: inverted simulator noise + rejection outside the prior",
                                  acceptance = acc)
      draws
    },
    observations = sbibm_obs_two_moons,
    flow = flow_maf(blocks = 5, hidden = 64, mixture = 8),
    featurizer = featurizer_identity()
  )
}

# ---------------------------------------------------------------------------------------
# gaussian_mixture: theta ~ U(-10, 10)^2; x | theta ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I)
# (sbibm's mixture_scales 1.0 and 0.1 are standard deviations).
# The likelihood is symmetric in x and theta, so the posterior is the same mixture centred
# at x, truncated to the prior box: exact draws by picking a component with probability
# 1/2, drawing from it and rejecting draws outside the box (the truncation reweights the
# components exactly as the posterior does).
# ---------------------------------------------------------------------------------------

sbibm_obs_gaussian_mixture <- matrix(c(
  -9.472713, -1.4950509,
  -2.940192, -8.682056,
  7.1683364, -3.0470583,
  -8.047317, -0.021793246,
  8.879822, 8.088118,
  -4.697014, -0.3752453,
  -6.806304, 7.828203,
  -8.022675, 5.017334,
  6.521385, 0.2811075,
  8.4677, -9.219099
), nrow = 10, byrow = TRUE)

sbibm_gaussian_mixture <- function() {
  list(
    name = "gaussian_mixture", dim_theta = 2L, dim_x = 2L,
    prior = nbi_prior(theta = prior_uniform(c(-10, -10), c(10, 10))),
    simulate = function(theta) {
      theta <- sbibm_theta_matrix(theta, 2)
      n <- nrow(theta)
      sd <- ifelse(stats::runif(n) < 0.5, 1, 0.1)
      theta + sd * matrix(stats::rnorm(2 * n), n)
    },
    log_lik = function(x_obs, theta) {
      theta <- sbibm_theta_matrix(theta, 2)
      r2 <- (theta[, 1] - x_obs[1])^2 + (theta[, 2] - x_obs[2])^2
      l1 <- log(0.5) - r2 / 2 - log(2 * pi)
      l2 <- log(0.5) - r2 / (2 * 0.01) - log(2 * pi * 0.01)
      sbibm_logaddexp(l1, l2)
    },
    reference = function(x_obs, n) {
      draws <- sbibm_rejection(n, propose = function(k) {
        sd <- ifelse(stats::runif(k) < 0.5, 1, 0.1)
        cbind(x_obs[1] + sd * stats::rnorm(k), x_obs[2] + sd * stats::rnorm(k))
      }, accept = function(m) abs(m[, 1]) <= 10 & abs(m[, 2]) <= 10)
      attr(draws, "info") <- list(method = "exact: mixture at x + rejection outside the prior",
                                  acceptance = attr(draws, "acceptance"))
      draws
    },
    observations = sbibm_obs_gaussian_mixture,
    flow = flow_maf(blocks = 5, hidden = 64, mixture = 8),
    featurizer = featurizer_identity()
  )
}

# ---------------------------------------------------------------------------------------
# slcp: theta ~ U(-3, 3)^5; x = four iid 2-D points (x1, y1, ..., x4, y4) from
# N(m, S) with m = (theta1, theta2), s1 = theta3^2, s2 = theta4^2, rho = tanh(theta5),
# S = [[s1^2 + 1e-6, rho s1 s2], [rho s1 s2, s2^2 + 1e-6]] (sbibm adds eps = 1e-6 to the
# diagonal): standard deviations theta3^2 and theta4^2.
#
# Reference draws (sampling with an exact importance/rejection correction):
# * the posterior is invariant under theta3 -> -theta3 and theta4 -> -theta4 (S depends on
#   them through their squares), so it is sampled in phi = (|theta3|, |theta4|, theta5)
#   and m, and each draw gets independent random signs for theta3 and theta4 (the four
#   symmetric modes, exactly);
# * for fixed phi the likelihood factorises as N(m; xbar, S / 4) h(phi), with
#   log h = -1.5 log|S| - 0.5 tr(S^-1 W) + const and W the scatter matrix of the 4 points;
# * the proposal for phi is a mixture of piecewise-constant densities proportional to h on
#   two grids: 85% a fine grid (128^3 cells) over the box holding all coarse cells within
#   30 log units of the maximum, 10% a coarse grid (60 x 60 x 120 cells) over the whole
#   prior box, 5% uniform on the prior box (so the weights are bounded); then
#   m ~ N(xbar, S / 4);
# * each proposal gets the weight prior(theta) p(x | theta) / q(theta), with the exact
#   likelihood and the exact proposal density (weight 0 when m falls outside the box);
# * draws are accepted with probability w / M, M = 1.5 x the largest weight of a pilot
#   pool of 20 n proposals (accepted draws of the pilot are kept; later pools count any
#   weight above M as a bound violation, reported in "info" with the largest w / M).
# The info attribute reports the effective sample size of the weights (n_eff / N), the
# largest weight over the mean, the acceptance rate and the bound violations.
# ---------------------------------------------------------------------------------------

sbibm_obs_slcp <- matrix(c(
  2.3718784, 0.49947417, 9.931435, 1.7136912, -10.436423, -1.9067793, -1.2343777, -0.09735,
  -0.66452104, -2.9279308, -16.49147, 4.06107, 4.232153, -4.652277, -4.9924355, -1.5655216,
  3.5023372, 5.254722, 8.685451, 9.995327, 0.40782332, -5.7111573, 10.605566, 12.695774,
  -1.6371447, -0.037302777, -1.5622597, 0.031204943, -3.683134, 0.09953671, -1.7389069, 0.0309663,
  -8.801672, 8.726709, -10.484016, 6.857725, -6.769688, 7.574161, 3.804308, 2.7593615,
  0.069512725, 4.0657325, -1.1986864, 0.94379723, -1.4434359, 0.02170819, -4.4811616, -4.26959,
  -3.0776706, -1.2080946, 25.778881, -2.244017, -0.77473235, -1.5114331, 5.919487, -1.6953411,
  1.2463324, -2.414371, -2.9786007, -2.3214335, -17.3002, -3.298883, -13.487199, -3.023044,
  4.755368, -2.3791986, 3.5834174, -1.444761, 5.063205, -3.448882, 0.56577647, 1.3524654,
  1.3710914, -2.39026, 1.8363019, -2.4391632, 2.013802, -3.2097385, 2.4036794, -3.0089793
), nrow = 10, byrow = TRUE)

# Covariance entries of the SLCP data for each row of (theta3, theta4, theta5); the
# determinant is computed as s1^2 s2^2 / cosh(theta5)^2 + eps (s1^2 + s2^2) + eps^2,
# which stays accurate when |rho| is close to 1.
sbibm_slcp_cov <- function(t3, t4, t5, eps = 1e-6) {
  s1 <- t3^2
  s2 <- t4^2
  list(v11 = s1^2 + eps, v22 = s2^2 + eps, v12 = tanh(t5) * s1 * s2,
       det = s1^2 * s2^2 / cosh(t5)^2 + eps * (s1^2 + s2^2) + eps^2)
}

sbibm_slcp_log_lik <- function(x_obs, theta) {
  theta <- sbibm_theta_matrix(theta, 5)
  S <- sbibm_slcp_cov(theta[, 3], theta[, 4], theta[, 5])
  q <- 0
  for (j in 1:4) {
    dx <- x_obs[2 * j - 1] - theta[, 1]
    dy <- x_obs[2 * j] - theta[, 2]
    q <- q + (S$v22 * dx^2 - 2 * S$v12 * dx * dy + S$v11 * dy^2) / S$det
  }
  -4 * log(2 * pi) - 2 * log(S$det) - 0.5 * q
}

# log h(phi) of the comment above, up to a constant, for phi = (a, b, c) columns.
sbibm_slcp_log_h <- function(a, b, c, W) {
  S <- sbibm_slcp_cov(a, b, c)
  -1.5 * log(S$det) - 0.5 * (S$v22 * W[1, 1] - 2 * S$v12 * W[1, 2] + S$v11 * W[2, 2]) / S$det
}

# A piecewise-constant density proportional to exp(log h) at the cell centres of a
# regular grid over [lo, hi] (3-D) with n cells per dimension.
sbibm_slcp_grid <- function(lo, hi, n, W) {
  width <- (hi - lo) / n
  centre <- lapply(1:3, function(k) lo[k] + (seq_len(n[k]) - 0.5) * width[k])
  a <- rep(centre[[1]], times = n[2] * n[3])
  b <- rep(rep(centre[[2]], each = n[1]), times = n[3])
  c <- rep(centre[[3]], each = n[1] * n[2])
  lh <- sbibm_slcp_log_h(a, b, c, W)
  p <- exp(lh - max(lh))
  p <- p / sum(p)
  list(lo = lo, hi = hi, n = n, width = width, log_h = lh, prob = p,
       log_dens = log(p) - sum(log(width)))
}

sbibm_slcp_grid_sample <- function(g, k) {
  cell <- sample.int(length(g$prob), k, replace = TRUE, prob = g$prob) - 1L
  i <- cell %% g$n[1]
  j <- (cell %/% g$n[1]) %% g$n[2]
  l <- cell %/% (g$n[1] * g$n[2])
  cbind(g$lo[1] + (i + stats::runif(k)) * g$width[1],
        g$lo[2] + (j + stats::runif(k)) * g$width[2],
        g$lo[3] + (l + stats::runif(k)) * g$width[3])
}

# log density of the grid at the rows of phi (-Inf outside its box).
sbibm_slcp_grid_logdens <- function(g, phi) {
  idx <- lapply(1:3, function(k) floor((phi[, k] - g$lo[k]) / g$width[k]))
  inside <- Reduce(`&`, lapply(1:3, function(k) idx[[k]] >= 0 & idx[[k]] < g$n[k]))
  out <- rep(-Inf, nrow(phi))
  cell <- idx[[1]] + g$n[1] * (idx[[2]] + g$n[2] * idx[[3]]) + 1
  out[inside] <- g$log_dens[cell[inside]]
  out
}

sbibm_slcp_reference <- function(x_obs, n, n_fine = 128L, coarse = c(60L, 60L, 120L),
                                 pilot = 20L * n) {
  pts <- matrix(x_obs, ncol = 2, byrow = TRUE)
  xbar <- colMeans(pts)
  W <- crossprod(sweep(pts, 2, xbar))
  lo <- c(0, 0, -3)
  hi <- c(3, 3, 3)
  gc <- sbibm_slcp_grid(lo, hi, coarse, W)
  # fine box: all coarse cells within 30 log units of the best, plus one coarse cell
  keep <- which(gc$log_h > max(gc$log_h) - 30) - 1L
  ijk <- cbind(keep %% coarse[1], (keep %/% coarse[1]) %% coarse[2],
               keep %/% (coarse[1] * coarse[2]))
  flo <- pmax(lo, lo + (apply(ijk, 2, min) - 1) * gc$width)
  fhi <- pmin(hi, lo + (apply(ijk, 2, max) + 2) * gc$width)
  gf <- sbibm_slcp_grid(flo, fhi, rep(as.integer(n_fine), 3), W)
  mix <- c(fine = 0.85, coarse = 0.10, uniform = 0.05)
  log_q_phi <- function(phi) {
    lf <- sbibm_slcp_grid_logdens(gf, phi) + log(mix[["fine"]])
    lc <- sbibm_slcp_grid_logdens(gc, phi) + log(mix[["coarse"]])
    lu <- rep(log(mix[["uniform"]]) - log(54), nrow(phi))
    sbibm_logaddexp(sbibm_logaddexp(lf, lc), lu)
  }
  # proposals with their log importance weights
  propose <- function(k) {
    comp <- sample.int(3, k, replace = TRUE, prob = mix)
    phi <- matrix(0, k, 3)
    if (any(comp == 1)) phi[comp == 1, ] <- sbibm_slcp_grid_sample(gf, sum(comp == 1))
    if (any(comp == 2)) phi[comp == 2, ] <- sbibm_slcp_grid_sample(gc, sum(comp == 2))
    if (any(comp == 3))
      phi[comp == 3, ] <- cbind(stats::runif(sum(comp == 3), 0, 3),
                                stats::runif(sum(comp == 3), 0, 3),
                                stats::runif(sum(comp == 3), -3, 3))
    S <- sbibm_slcp_cov(phi[, 1], phi[, 2], phi[, 3])
    # m ~ N(xbar, S / 4) through the Cholesky factor of S / 4
    l11 <- sqrt(S$v11 / 4)
    l21 <- (S$v12 / 4) / l11
    l22 <- sqrt(S$det / S$v11 / 4)
    z1 <- stats::rnorm(k)
    z2 <- stats::rnorm(k)
    m1 <- xbar[1] + l11 * z1
    m2 <- xbar[2] + l21 * z1 + l22 * z2
    log_q_m <- -log(2 * pi) - log(l11 * l22) - 0.5 * (z1^2 + z2^2)
    sgn3 <- ifelse(stats::runif(k) < 0.5, -1, 1)
    sgn4 <- ifelse(stats::runif(k) < 0.5, -1, 1)
    theta <- cbind(m1, m2, sgn3 * phi[, 1], sgn4 * phi[, 2], phi[, 3])
    # q(theta) = q_phi(|theta3|, |theta4|, theta5) q(m | phi) / 4 (the four sign choices)
    log_q <- log_q_phi(phi) + log_q_m - log(4)
    inside <- abs(m1) <= 3 & abs(m2) <= 3
    lw <- rep(-Inf, k)
    lw[inside] <- sbibm_slcp_log_lik(x_obs, theta[inside, , drop = FALSE]) - 5 * log(6) -
      log_q[inside]
    list(theta = unname(theta), lw = lw)
  }
  p0 <- propose(pilot)
  w0 <- exp(p0$lw - max(p0$lw))
  n_eff <- sum(w0)^2 / sum(w0^2)
  log_M <- max(p0$lw) + log(1.5)
  out <- list()
  got <- 0L
  tried <- 0
  violations <- 0L
  worst <- -Inf
  batch <- p0
  repeat {
    acc <- stats::runif(length(batch$lw)) < exp(batch$lw - log_M)
    violations <- violations + sum(batch$lw > log_M)
    worst <- max(worst, batch$lw - log_M)
    tried <- tried + length(batch$lw)
    out[[length(out) + 1L]] <- batch$theta[acc, , drop = FALSE]
    got <- got + sum(acc)
    if (got >= n) break
    batch <- propose(max(1000L, ceiling(1.3 * (n - got) * tried / max(got, 1))))
  }
  draws <- do.call(rbind, out)[seq_len(n), , drop = FALSE]
  attr(draws, "info") <- list(
    method = "grid-mixture proposal on (|theta3|, |theta4|, theta5) + exact rejection",
    n_eff_fraction = n_eff / pilot, max_weight_over_mean = max(w0) / mean(w0),
    acceptance = got / tried, bound_violations = violations,
    largest_weight_over_bound = exp(worst),
    fine_box = rbind(lower = flo, upper = fhi))
  draws
}

sbibm_slcp <- function() {
  list(
    name = "slcp", dim_theta = 5L, dim_x = 8L,
    prior = nbi_prior(theta = prior_uniform(rep(-3, 5), rep(3, 5))),
    simulate = function(theta) {
      theta <- sbibm_theta_matrix(theta, 5)
      n <- nrow(theta)
      S <- sbibm_slcp_cov(theta[, 3], theta[, 4], theta[, 5])
      l11 <- sqrt(S$v11)
      l21 <- S$v12 / l11
      l22 <- sqrt(S$det / S$v11)
      x <- matrix(0, n, 8)
      for (j in 1:4) {
        z1 <- stats::rnorm(n)
        z2 <- stats::rnorm(n)
        x[, 2 * j - 1] <- theta[, 1] + l11 * z1
        x[, 2 * j] <- theta[, 2] + l21 * z1 + l22 * z2
      }
      x
    },
    log_lik = sbibm_slcp_log_lik,
    reference = function(x_obs, n) sbibm_slcp_reference(x_obs, n),
    observations = sbibm_obs_slcp,
    flow = flow_maf(blocks = 5, hidden = 64, mixture = 4),
    featurizer = featurizer_identity()
  )
}

# ---------------------------------------------------------------------------------------
# Task constructor, engine, and one accuracy run
# ---------------------------------------------------------------------------------------

sbibm_task_names <- c("gaussian_linear", "two_moons", "gaussian_mixture", "slcp")

sbibm_task <- function(name) {
  switch(name,
         gaussian_linear = sbibm_gaussian_linear(),
         two_moons = sbibm_two_moons(),
         gaussian_mixture = sbibm_gaussian_mixture(),
         slcp = sbibm_slcp(),
         stop("unknown task '", name, "'; one of ", paste(sbibm_task_names, collapse = ", "),
              call. = FALSE))
}

# An nbi_engine for a task: vectorised simulator, exact likelihood (x_sim is ignored: the
# likelihood is analytic).
sbibm_engine <- function(task, flow = task$flow, featurizer = task$featurizer, workdir = NULL) {
  ll <- task$log_lik
  nbi_engine(task$simulate, task$prior, featurizer = featurizer, flow = flow,
             log_likelihood = function(x_obs, x_sim, theta, x_err) ll(x_obs, theta),
             vectorized = TRUE, workdir = workdir)
}

# Training settings by budget: small training sets get more (cheaper) epochs.
sbibm_fit_settings <- function(n_sims) {
  if (identical(Sys.getenv("NBI_BENCH_SMOKE"), "1"))  # CI's smoke run: seconds, not results
    return(list(n_epochs = 2L, batch_size = 64L, patience = 2L, lr = 1e-3))
  if (n_sims <= 2000) list(n_epochs = 500L, batch_size = 64L, patience = 30L, lr = 1e-3)
  else if (n_sims <= 20000) list(n_epochs = 300L, batch_size = 128L, patience = 20L, lr = 1e-3)
  else list(n_epochs = 150L, batch_size = 256L, patience = 15L, lr = 1e-3)
}

# Fits one engine on `n_sims` simulations (amortised NPE; or SNPE-IS with `n_rounds` > 1,
# one fit per observation, n_sims / n_rounds simulations per round) and scores the
# posteriors of the observations `obs` (rows of task$observations) against reference
# draws (`references`: a list of matrices, one per element of `obs`, made with
# task$reference when NULL). Returns one data frame row per observation:
#   c2st      C2ST of n_draws surrogate draws against n_draws reference draws
#   c2st_is   C2ST of n_draws importance-resampled draws (nbi_resample of the weighted
#             proposals) against the same reference draws. With is_max > 1, an observation
#             whose n_draws weighted proposals have n_eff < n_draws gets a fresh importance
#             sample of min(is_max * n_draws, 1.2 n_draws^2 / n_eff) proposals, so that the
#             resampled draws are not mostly duplicates of a few proposals (is_draws says
#             how many proposals were weighed)
#             With adapt > 0, predict(..., adapt = ) refines the proposal by adaptive
#             importance sampling first (a defensive Student-t mixture, that many rounds of
#             n draws each); c2st then uses separate draws of the surrogate itself
#   efficiency, n_eff, pareto_k of the importance weights
#   fit_s, predict_s (per observation), c2st_s (both tests)
sbibm_accuracy <- function(task, n_sims, obs = 1:3, n_draws = 10000L, references = NULL,
                           method = c("npe", "snpe_is"), n_rounds = 5L, seed = 1L,
                           threads = 1L, verbose = FALSE, c2st_args = list(), is_max = 1,
                           adapt = 0L, is_c2st = TRUE) {
  method <- match.arg(method)
  x_all <- task$observations[obs, , drop = FALSE]
  if (is.null(references))
    references <- lapply(seq_along(obs), function(i) with_seed_local(seed + 1000L + obs[i],
                                                                      task$reference(x_all[i, ], n_draws)))
  engine <- sbibm_engine(task)
  st <- sbibm_fit_settings(if (method == "npe") n_sims else n_sims / n_rounds)
  fit_one <- function(x_obs, fit_seed) {
    t0 <- proc.time()[["elapsed"]]
    eng <- if (method == "npe") {
      theta <- with_seed_local(fit_seed, sample_prior(task$prior, n_sims))
      x <- with_seed_local(fit_seed + 1L, task$simulate(theta))
      fit(engine, theta = theta, x = x, n_epochs = st$n_epochs, batch_size = st$batch_size,
          patience = st$patience, lr = st$lr, threads = threads, seed = fit_seed,
          verbose = verbose)
    } else {
      fit(engine, n_sims = round(n_sims / n_rounds), n_rounds = n_rounds, x_obs = x_obs,
          n_epochs = st$n_epochs, batch_size = st$batch_size, patience = st$patience,
          lr = st$lr, threads = threads, seed = fit_seed, verbose = verbose)
    }
    list(engine = eng, seconds = proc.time()[["elapsed"]] - t0)
  }
  score <- function(eng, x, ref, i) {
    t0 <- proc.time()[["elapsed"]]
    post <- suppressWarnings(predict(eng, x, n_samples = n_draws, importance = is_c2st,
                                     seed = seed + i, threads = threads,
                                     adapt = if (is_c2st) adapt else 0L))
    if (inherits(post, "nbi_posterior")) post <- list(post)
    tempered <- is.numeric(eng$temper) && eng$temper != 1
    raw <- if (is_c2st && (tempered || adapt > 0))  # the surrogate's own draws
      suppressWarnings(predict(eng, x, n_samples = n_draws, importance = FALSE,
                               seed = seed + i + 500L, threads = threads))
    else post
    if (inherits(raw, "nbi_posterior")) raw <- list(raw)
    pred_s <- (proc.time()[["elapsed"]] - t0) / length(post)
    rows <- lapply(seq_along(post), function(j) {
      p <- post[[j]]
      t1 <- proc.time()[["elapsed"]]
      c_raw <- do.call(nbi_c2st, c(list(raw[[j]]$theta, ref[[j]], seed = seed + i + j,
                                        threads = threads), c2st_args))
      if (!is_c2st)  # the surrogate alone: no importance weights, no second test
        return(data.frame(c2st = as.numeric(c_raw), c2st_is = NA_real_, efficiency = NA_real_,
                          n_eff = NA_real_, pareto_k = NA_real_, is_draws = 0, adapt = 0L,
                          predict_s = pred_s, c2st_s = proc.time()[["elapsed"]] - t1))
      if (is_max > 1 && is.finite(p$n_eff) && p$n_eff < n_draws) {
        n_more <- ceiling(min(is_max * n_draws, 1.2 * n_draws^2 / max(p$n_eff, 1)))
        p <- suppressWarnings(predict(eng, x[j, ], n_samples = n_more, importance = TRUE,
                                      seed = seed + i + j + 900L, threads = threads,
                                      adapt = adapt))
      }
      rs <- nbi_resample(p, n_draws, seed = seed + i + j)
      c_is <- do.call(nbi_c2st, c(list(rs$theta, ref[[j]], seed = seed + i + j + 7L,
                                       threads = threads), c2st_args))
      data.frame(c2st = as.numeric(c_raw), c2st_is = as.numeric(c_is),
                 efficiency = p$efficiency, n_eff = p$n_eff,
                 pareto_k = if (is.null(p$pareto_k)) NA_real_ else p$pareto_k,
                 is_draws = nrow(p$theta), adapt = adapt,
                 predict_s = pred_s, c2st_s = proc.time()[["elapsed"]] - t1)
    })
    do.call(rbind, rows)
  }
  out <- if (method == "npe") {
    f <- fit_one(NULL, seed)
    res <- score(f$engine, x_all, references, 0L)
    cbind(obs = obs, fit_s = f$seconds, epochs = nrow(f$engine$history$epochs),
          sims_used = n_sims, res)
  } else {
    do.call(rbind, lapply(seq_along(obs), function(i) {
      f <- fit_one(x_all[i, ], seed + 100L * obs[i])
      res <- score(f$engine, x_all[i, , drop = FALSE], references[i], obs[i])
      cbind(obs = obs[i], fit_s = f$seconds, epochs = nrow(f$engine$history$epochs),
            sims_used = sum(f$engine$history$rounds$n_sims), res)
    }))
  }
  cbind(task = task$name, method = method, budget = n_sims, out)
}

# For the scripts under bench/: an environment variable, or a default when it is unset.
bench_env <- function(name, default) {
  v <- Sys.getenv(name, "")
  if (nzchar(v)) v else default
}

# The folder of the script run with Rscript (bench/ when unknown): where results are written.
bench_script_dir <- function() {
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) dirname(normalizePath(sub("^--file=", "", a[1]))) else "bench"
}

# Evaluates `expr` under set.seed(seed), leaving the session's random stream unchanged
# (nbi's own helper).
with_seed_local <- function(seed, expr) nbi:::with_seed(seed, expr)
