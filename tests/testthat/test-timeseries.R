# The time-series featurizer: exact gradients (its pooling layer and the whole featurizer +
# flow loss), invariance to the order of the rows and to the padding, curves of 3 and 5,000
# epochs in one batch, float32, and clear errors.

ts_feat <- function(pool = "attention", bands = 1L, layers = 2L, heads = 2L,
                    time_params = NULL) {
  featurizer_timeseries(d_model = 8, heads = heads, layers = layers, hidden = 6, queries = 3,
                        n_freq = 2, pool = pool, bands = bands, dim_out = 3,
                        time_params = time_params)
}

ts_spec_of <- function(f, R, width, freqs = c(0.3, 1.7)) {
  feat <- nbi:::ts_spec(f, R, width, freqs[seq_len(f$n_freq)])
  model_spec(f, flow_maf(blocks = 2, hidden = 6, mixture = 2, activation = "tanh"),
             n_in = feat$n_in, d = 2, feat = feat)
}

# curves as matrices (t, value, [error], [band]) with the given numbers of rows
random_curves <- function(sizes, width, bands = 1, seed = 1) {
  with_seed(seed, lapply(sizes, function(k) {
    m <- cbind(stats::rnorm(k), stats::rnorm(k))
    if (width - (bands > 1) == 3) m <- cbind(m, stats::runif(k, 0.1, 1))
    if (bands > 1) m <- cbind(m, sample.int(bands, k, replace = TRUE))
    m
  }))
}

# the C core's layout: row count, the curve's extras (a column of `extra` per curve), then R
# rows (padding rows filled with `fill`)
pad_curves <- function(curves, R, width, fill = 0, extra = NULL) {
  ne <- NROW(extra)
  vapply(seq_along(curves), function(i) {
    s <- curves[[i]]
    m <- matrix(fill, R, width)
    m[seq_len(nrow(s)), ] <- s
    c(nrow(s), if (ne) as.matrix(extra)[, i], as.vector(t(m)))
  }, numeric(1 + ne + R * width))
}

n_ts_feat_params <- function(spec) {
  length(model_init(spec, 1)) - .Call(C_r_model_n_params, list(
    feat = list(type = 0L, n_in = 3L, hidden = integer(0), n_out = 3L, act = 0L),
    flow = spec$flow))
}

test_that("segment pooling: forward matches R, gradients match finite differences", {
  D <- 4; H <- 2; Q <- 2; counts <- c(3L, 1L, 5L)
  N <- sum(counts); B <- length(counts)
  kv <- with_seed(1, stats::rnorm(N * 2 * D))
  q <- with_seed(2, matrix(stats::rnorm(Q * D), D, Q))
  g <- with_seed(3, stats::rnorm(B * Q * D))
  gm <- with_seed(4, stats::rnorm(B * D))
  r <- .Call(C_r_nn_segpool, kv, q, counts, H, g, gm, 1L)
  # forward in R: per segment, query, head: softmax(k . q / sqrt(dh)) weighted mean of v
  K <- matrix(kv, 2 * D)[1:D, , drop = FALSE]
  V <- matrix(kv, 2 * D)[D + 1:D, , drop = FALSE]
  start <- c(0, cumsum(counts))
  ref <- numeric(0)
  for (b in 1:B) for (qq in 1:Q) for (h in 1:H) {
    rows <- (start[b] + 1):start[b + 1]
    ch <- (h - 1) * (D / H) + 1:(D / H)
    s <- colSums(K[ch, rows, drop = FALSE] * q[ch, qq]) / sqrt(D / H)
    a <- exp(s - max(s)) / sum(exp(s - max(s)))
    ref <- c(ref, V[ch, rows, drop = FALSE] %*% a)
  }
  expect_equal(r[[1]], ref, tolerance = 1e-12)
  expect_equal(r[[4]], as.vector(vapply(1:B, function(b)
    rowMeans(K[, (start[b] + 1):start[b + 1], drop = FALSE]), numeric(D))), tolerance = 1e-12)
  f_kv <- function(v) sum(.Call(C_r_nn_segpool, v, q, counts, H, g, gm, 1L)[[1]] * g)
  expect_lt(max_rel_err(r[[2]], fd_grad(f_kv, kv)), 1e-7)
  f_q <- function(v) sum(.Call(C_r_nn_segpool, kv, matrix(v, D), counts, H, g, gm, 1L)[[1]] * g)
  expect_lt(max_rel_err(r[[3]], fd_grad(f_q, as.vector(q))), 1e-7)
  f_m <- function(v) sum(.Call(C_r_nn_segpool, v, q, counts, H, g, gm, 1L)[[4]] * gm)
  dmean <- matrix(fd_grad(f_m, kv), 2 * D)[1:D, ]
  expect_lt(max_rel_err(r[[5]], as.vector(dmean)), 1e-7)
  expect_identical(.Call(C_r_nn_segpool, kv, q, counts, H, g, gm, 2L), r)
})

test_that("featurizer + flow loss gradient matches finite differences", {
  cfgs <- list(list(pool = "attention", bands = 1L, width = 3L, layers = 2L),
               list(pool = "mean", bands = 1L, width = 2L, layers = 1L),
               list(pool = "attention", bands = 3L, width = 4L, layers = 0L),
               list(pool = "attention", bands = 1L, width = 3L, layers = 1L, tp = "a"))
  for (cfg in cfgs) {
    f <- ts_feat(cfg$pool, cfg$bands, cfg$layers, time_params = cfg$tp)
    R <- 5
    spec <- ts_spec_of(f, R, cfg$width)
    expect_equal(spec$feat$extra, length(cfg$tp))
    nf <- n_ts_feat_params(spec)
    p <- random_params(spec, scale = 0.3)
    p[seq_len(nf)] <- p[seq_len(nf)] + with_seed(2, 0.1 * stats::rnorm(nf))  # nonzero biases
    curves <- random_curves(c(5, 2, 1, 4), cfg$width, cfg$bands, seed = 3)
    extra <- if (length(cfg$tp)) rbind(c(-0.9, 0.1, 0.7, 1.6)) else NULL
    x <- pad_curves(curves, R, cfg$width, fill = 7, extra = extra)
    th <- with_seed(4, matrix(stats::rnorm(2 * ncol(x)), 2))
    r <- .Call(C_r_model_nll_grad, spec, p, x, th, 1L)
    fd <- fd_grad(function(v) .Call(C_r_model_nll_grad, spec, v, x, th, 1L)[[1]], p)
    expect_lt(max_rel_err(r[[2]], fd), 1e-6)
    expect_gt(sum(abs(r[[2]][seq_len(nf)])), 0)   # the featurizer is trained
    expect_equal(.Call(C_r_model_nll_grad, spec, p, x, th, 2L), r, tolerance = 1e-12)
    if (length(cfg$tp)) {  # the extras are read: another position, another loss
      x2 <- pad_curves(curves, R, cfg$width, fill = 7, extra = -extra)
      expect_gt(abs(.Call(C_r_model_nll_grad, spec, p, x2, th, 1L)[[1]] - r[[1]]), 1e-6)
    }
  }
})

test_that("log-densities do not depend on row order, padding or the other curves", {
  f <- ts_feat()
  R <- 7
  spec <- ts_spec_of(f, R, 3L)
  p <- random_params(spec, scale = 0.3)
  curves <- random_curves(c(7, 4, 3, 1), 3L, seed = 5)
  th <- with_seed(6, matrix(stats::rnorm(2 * 4), 2))
  lp <- function(cs, fill = 0, RR = R) {
    sp <- nbi:::spec_for_rows(spec, RR)
    .Call(C_r_model_log_prob, sp, p, pad_curves(cs, RR, 3L, fill), th, 1, 1L)
  }
  base <- lp(curves)
  perm <- lapply(curves, function(s) s[with_seed(7, sample.int(nrow(s))), , drop = FALSE])
  expect_equal(lp(perm), base, tolerance = 1e-12)
  expect_identical(lp(curves, fill = 1e6), base)         # padding is never read
  expect_equal(lp(curves, RR = 20), base, tolerance = 1e-13)  # nor its amount
  one <- vapply(1:4, function(i) .Call(C_r_model_log_prob, nbi:::spec_for_rows(spec, 7), p,
                                       pad_curves(curves[i], 7, 3L), th[, i, drop = FALSE], 1, 1L), 0)
  expect_equal(one, base, tolerance = 1e-12)
  # a changed epoch changes the density (the rows are read)
  c2 <- curves; c2[[2]][3, 2] <- c2[[2]][3, 2] + 1
  expect_false(isTRUE(all.equal(lp(c2)[2], base[2])))
})

test_that("a 3-epoch and a 5,000-epoch curve train in one batch", {
  f <- ts_feat()
  R <- 5000
  spec <- ts_spec_of(f, R, 3L)
  p <- random_params(spec, scale = 0.3)
  curves <- random_curves(c(3, 5000), 3L, seed = 8)
  x <- pad_curves(curves, R, 3L)
  th <- with_seed(9, matrix(stats::rnorm(4), 2))
  r <- .Call(C_r_model_nll_grad, spec, p, x, th, 2L)
  expect_true(is.finite(r[[1]]) && all(is.finite(r[[2]])))
  # the batch's loss is the mean of each curve's alone
  l1 <- .Call(C_r_model_nll_grad, nbi:::spec_for_rows(spec, 3), p,
              pad_curves(curves[1], 3, 3L), th[, 1, drop = FALSE], 1L)[[1]]
  l2 <- .Call(C_r_model_nll_grad, spec, p, pad_curves(curves[2], R, 3L),
              th[, 2, drop = FALSE], 1L)[[1]]
  expect_equal(r[[1]], (l1 + l2) / 2, tolerance = 1e-10)
  # float32 products: the same loss to single precision
  s32 <- spec; s32$precision <- "float32"
  expect_equal(.Call(C_r_model_nll_grad, s32, p, x, th, 2L)[[1]], r[[1]], tolerance = 1e-4)
})

test_that("malformed row counts and curves are refused with clear errors", {
  f <- ts_feat()
  spec <- ts_spec_of(f, 4, 3L)
  p <- model_init(spec, 1)
  x <- pad_curves(random_curves(c(4, 2), 3L), 4, 3L)
  th <- matrix(0, 2, 2)
  for (bad in c(0, 5, 2.5, NaN)) {
    xb <- x; xb[1, 2] <- bad
    expect_error(.Call(C_r_model_log_prob, spec, p, xb, th, 1, 1L), "row count")
  }
  bad_spec <- spec
  bad_spec$feat$extra <- 17L
  expect_error(.Call(C_r_model_log_prob, bad_spec, p, x, th, 1, 1L), "extra in 0..16")
  bad_spec$feat$extra <- 1L   # n_in no longer matches
  expect_error(.Call(C_r_model_log_prob, bad_spec, p, x, th, 1, 1L), "1 \\+ extra \\+ rows")
  expect_error(featurizer_timeseries(d_model = 10, heads = 4), "multiple of `heads`")
  expect_error(featurizer_timeseries(pool = "max"), "`pool`")
  expect_error(nbi:::check_curve(matrix(1, 3, 5), f, "x_obs"), "2 or 3 columns")
  expect_error(nbi:::check_curve(cbind(1:3, c(1, NA, 2)), f, "x_obs"), "non-finite")
  expect_error(nbi:::check_curve(cbind(1:3, 1:3, -1), f, "x_obs"), "errors")
  fb <- ts_feat(bands = 2L)
  expect_error(nbi:::check_curve(cbind(1:3, 1:3, 0.1, 3), fb, "x_obs"), "bands in 1..2")
})

test_that("curves of 3 to 40 epochs: the fitted posterior has the analytic mean and width", {
  skip_on_cran()
  # mu ~ N(0, 1); each epoch's value ~ N(mu, error^2): the posterior is Gaussian with
  # precision 1 + sum(1 / error^2), so its width depends on the number of epochs
  sim <- function(theta) {
    n <- sample(3:40, 1)
    err <- stats::runif(n, 0.5, 1.5)
    cbind(t = sort(stats::runif(n, 0, 100)), value = theta[["mu"]] + err * stats::rnorm(n),
          error = err)
  }
  log_lik <- function(x_obs, x_sim, theta, x_err)   # theta: one named parameter vector
    sum(stats::dnorm(x_obs[, 2], theta[["mu"]], x_obs[, 3], log = TRUE))
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
                    featurizer = featurizer_timeseries(d_model = 16, hidden = 32, queries = 2,
                                                       n_freq = 0, dim_out = 16),
                    flow = flow_maf(blocks = 3, hidden = 32, mixture = 2),
                    log_likelihood = log_lik, simulate_for_likelihood = FALSE)
  eng <- fit(eng, n_sims = 4000, n_epochs = 40, seed = 1, threads = 2, verbose = FALSE)
  analytic <- function(s) {
    prec <- 1 + sum(1 / s[, 3]^2)
    c(mean = sum(s[, 2] / s[, 3]^2) / prec, sd = 1 / sqrt(prec))
  }
  set.seed(7)
  for (n in c(3, 40)) {
    err <- rep(1, n)
    s <- cbind(sort(stats::runif(n, 0, 100)), 0.4 + err * stats::rnorm(n), err)
    a <- analytic(s)
    p <- summary(predict(eng, s, n_samples = 4000, importance = FALSE, seed = 2))
    expect_lt(abs(p$mean - a[["mean"]]) / a[["sd"]], 0.25)
    expect_lt(abs(p$sd / a[["sd"]] - 1), 0.2)
    w <- summary(predict(eng, s, n_samples = 4000, seed = 2))
    expect_lt(abs(w$mean - a[["mean"]]) / a[["sd"]], 0.1)
    expect_lt(abs(w$sd / a[["sd"]] - 1), 0.1)
    # the rows in another order: the same posterior (other draws: the observation seeds them;
    # the densities themselves are order-free to rounding, tested above)
    q <- summary(predict(eng, s[rev(seq_len(n)), ], n_samples = 4000, importance = FALSE, seed = 2))
    expect_lt(abs(q$mean - p$mean) / p$sd, 0.1)
    expect_lt(abs(q$sd / p$sd - 1), 0.06)
  }
})

# a bump of width 5 at t0, values with error 0.25, on 30 to 60 epochs in [0, 100]
bump_sim <- function(theta) {
  n <- sample(30:60, 1)
  t <- sort(stats::runif(n, 0, 100))
  cbind(t = t, value = exp(-0.5 * ((t - theta[["t0"]]) / 5)^2) + 0.25 * stats::rnorm(n),
        error = 0.25)
}
bump_log_lik <- function(x_obs, x_sim, theta, x_err)
  sum(stats::dnorm(x_obs[, 2], exp(-0.5 * ((x_obs[, 1] - theta[["t0"]]) / 5)^2), x_obs[, 3],
                   log = TRUE))
bump_engine <- function(time_params = "t0", t0_prior = prior_uniform(20, 80))
  nbi_engine(bump_sim, nbi_prior(t0 = t0_prior, a = prior_normal(0, 1)),
             featurizer = featurizer_timeseries(d_model = 16, hidden = 32, queries = 2,
                                                n_freq = 4, dim_out = 16,
                                                time_params = time_params),
             flow = flow_maf(blocks = 3, hidden = 32, mixture = 2),
             log_likelihood = function(x_obs, x_sim, theta, x_err)
               bump_log_lik(x_obs, x_sim, theta, x_err) + stats::dnorm(theta[["a"]], log = TRUE),
             simulate_for_likelihood = FALSE)

test_that("time parameters: a curve's reference epoch is its peak inside the prior's window", {
  ref <- list(index = 1L, window = c(20, 80), peak = "max", width = 15)
  s <- cbind(t = c(2, 5, 10, 28, 30, 31, 32, 34, 50, 85, 90, 95),
             value = c(9, 9, 0, 0, 1, 3, 2.5, 0.5, 0, 0, 9, 9))
  expect_equal(nbi:::ts_reference(s, ref), 31)               # the 9s lie outside
  expect_equal(nbi:::ts_reference(s[12:1, ], ref), 31)       # row order does not matter
  s2 <- s
  s2[9, 2] <- 50                                             # one outlier: the running median
  expect_equal(nbi:::ts_reference(s2, ref), 31)
  expect_equal(nbi:::ts_reference(cbind(c(1, 2, 3), c(1, 0, 1)), ref), 1)  # none inside: all
  expect_equal(nbi:::ts_reference(s, modifyList(ref, list(peak = "min"))), 28)
  rel <- nbi:::ts_relative(list(s), cbind(t0 = 33, a = 1), ref)
  expect_equal(as.vector(rel$x[[1]][, 1]), asinh((s[, 1] - 31) / 15))
  expect_equal(unname(rel$theta[1, ]), c(2, 1))
  expect_null(attr(rel$x[[1]], "ts_position"))
  # models since 0.3.0 also read where the reference lies in the window: -1 to 1
  ref$position <- TRUE
  expect_equal(attr(nbi:::ts_relative(list(s), NULL, ref)$x[[1]], "ts_position"), (31 - 50) / 30)
  expect_equal(nbi:::ts_position(c(200), c(20, 80)), 2)
  expect_equal(nbi:::ts_position(33, c(-Inf, Inf)), 0)
  expect_error(nbi_engine(bump_sim, nbi_prior(t0 = prior_uniform(20, 80)),
                          featurizer = featurizer_timeseries(time_params = "tE")),
               "`time_params`: `tE` not among the prior's parameters")
  expect_error(featurizer_timeseries(time_params = 1), "`time_params` must be NULL")
  expect_error(featurizer_timeseries(peak = "top"), "`peak` must be")
  expect_output(print(featurizer_timeseries(time_params = "t0", peak = "min")),
                "time parameters t0, read relative to each curve's peak \\(min value\\)")
})

test_that("time parameters: a shifted curve's density is the shifted density, draws agree with it", {
  skip_on_cran()
  # an unbounded prior: no window, so nothing but the curve sets the density
  eng <- fit(bump_engine(t0_prior = prior_normal(50, 15)), n_sims = 300, n_epochs = 2, seed = 1,
             threads = 1, verbose = FALSE)
  expect_equal(eng$model$x_scale$ref$index, 1L)
  s <- with_seed(3, bump_sim(c(t0 = 50, a = 0)))
  th <- cbind(t0 = c(48, 50, 52.5), a = c(-1, 0, 0.5))
  lp <- nbi_log_prob(eng, th, s)
  moved <- s
  moved[, 1] <- moved[, 1] + 7.25
  th2 <- th
  th2[, "t0"] <- th2[, "t0"] + 7.25
  expect_equal(nbi_log_prob(eng, th2, moved), lp, tolerance = 1e-8)
  # without the time parameter the density does not move with the curve
  eng0 <- fit(bump_engine(NULL, prior_normal(50, 15)), n_sims = 300, n_epochs = 2, seed = 1,
              threads = 1, verbose = FALSE)
  expect_gt(max(abs(nbi_log_prob(eng0, th2, moved) - nbi_log_prob(eng0, th, s))), 1e-3)
  # inside a bounded window the network also reads where the peak lies, so a shift moves
  # the density and changes it
  engw <- fit(bump_engine(), n_sims = 300, n_epochs = 2, seed = 1, threads = 1, verbose = FALSE)
  expect_gt(max(abs(nbi_log_prob(engw, th2, moved) - nbi_log_prob(engw, th, s))), 1e-4)
  # the draws' log-densities are the model's density at the draws, in the prior's frame
  p <- predict(eng, s, n_samples = 200, importance = FALSE, seed = 4)
  expect_equal(p$log_q, nbi_log_prob(eng, p$theta, s), tolerance = 1e-6)
  # one call for several curves: each with its own reference
  pl <- predict(eng, list(s, moved), n_samples = 200, importance = FALSE, seed = 4)
  expect_equal(pl[[2]]$log_q, nbi_log_prob(eng, pl[[2]]$theta, moved), tolerance = 1e-6)
  expect_equal(nbi_log_prob(eng, rbind(pl[[1]]$theta[1, ], pl[[2]]$theta[1, ]), list(s, moved)),
               c(pl[[1]]$log_q[1], pl[[2]]$log_q[1]), tolerance = 1e-6)
})

test_that("time parameters: the posterior of a bump's time matches the quadrature", {
  skip_on_cran()
  eng <- fit(bump_engine(), n_sims = 8000, n_epochs = 30, seed = 1, threads = 2, verbose = FALSE)
  s <- with_seed(5, bump_sim(c(t0 = 61.3, a = 0)))
  grid <- seq(20, 80, length.out = 24001)
  ll <- vapply(grid, function(g) bump_log_lik(s, NULL, c(t0 = g), NULL), 0)
  w <- exp(ll - max(ll))
  w <- w / sum(w)
  q_mean <- sum(w * grid)
  q_sd <- sqrt(sum(w * (grid - q_mean)^2))
  sur <- summary(predict(eng, s, n_samples = 4000, importance = FALSE, seed = 2))
  expect_lt(abs(sur$mean[1] - q_mean) / q_sd, 0.5)
  expect_lt(sur$sd[1] / q_sd, 1.5)
  post <- predict(eng, s, n_samples = 4000, seed = 2)
  ws <- summary(post)
  expect_gt(post$n_eff, 1000)
  expect_lt(abs(ws$mean[1] - q_mean) / q_sd, 0.1)
  expect_lt(abs(ws$sd[1] / q_sd - 1), 0.1)
})

test_that("time parameters: a curve without signal gives the prior's window, wherever its peak falls", {
  skip_on_cran()
  # pure noise: the posterior of t0 is its prior, uniform on [20, 80] (mean 50, sd 17.3),
  # while each curve's noise peak (its reference epoch) falls anywhere in the window. A
  # network that did not know where would centre t0 on that peak.
  flat_sim <- function(theta) {
    t <- sort(stats::runif(40, 0, 100))
    cbind(t = t, value = stats::rnorm(40), error = 1)
  }
  eng <- nbi_engine(flat_sim, nbi_prior(t0 = prior_uniform(20, 80), a = prior_normal(0, 1)),
                    featurizer = featurizer_timeseries(d_model = 16, hidden = 32, queries = 2,
                                                       n_freq = 4, dim_out = 16,
                                                       time_params = "t0"),
                    flow = flow_maf(blocks = 3, hidden = 32, mixture = 4))
  eng <- fit(eng, n_sims = 3000, n_epochs = 25, seed = 1, threads = 2, verbose = FALSE)
  ref <- eng$model$x_scale$ref
  curves <- with_seed(7, replicate(40, flat_sim(NULL), simplify = FALSE))
  r <- vapply(curves, nbi:::ts_reference, 0, ref = ref)
  edge <- curves[order(abs(r - 50), decreasing = TRUE)[1:6]]   # peaks near the window's ends
  ps <- predict(eng, edge, n_samples = 4000, importance = FALSE, seed = 3)
  s <- vapply(ps, function(p) { q <- summary(p); c(q$mean[1], q$sd[1]) }, numeric(2))
  expect_lt(max(abs(s[1, ] - 50)), 3)
  expect_lt(max(abs(s[2, ] / sqrt(60^2 / 12) - 1)), 0.08)
})
