# Tests for R/prior.R: marginals, custom blocks, the joint prior,
# sample_prior() / log_prior() and argument checking.

# ---- helpers ---------------------------------------------------------------

# the marginals under test, with their analytic means and variances
tn_moments <- function(m, s, lo, hi) {
  a <- (lo - m) / s
  b <- (hi - m) / s
  Z <- if (a >= 0) {
    pnorm(a, lower.tail = FALSE) - pnorm(b, lower.tail = FALSE)
  } else if (b <= 0) {
    pnorm(b) - pnorm(a)
  } else {
    pnorm(b) - pnorm(a)
  }
  xphi <- function(z) if (is.finite(z)) z * dnorm(z) else 0
  r <- (dnorm(a) - dnorm(b)) / Z
  list(mean = m + s * r,
       var = s^2 * (1 + (xphi(a) - xphi(b)) / Z - r^2))
}

marginal_cases <- function() {
  lu_l <- 0.1
  lu_u <- 100
  lu_mean <- (lu_u - lu_l) / log(lu_u / lu_l)
  ln_m <- 0.3
  ln_s <- 0.6
  list(
    uniform = list(p = prior_uniform(-1, 3), lo = -1, hi = 3,
                   mean = 1, var = 16 / 12),
    loguniform = list(p = prior_loguniform(lu_l, lu_u), lo = lu_l, hi = lu_u,
                      mean = lu_mean,
                      var = (lu_u^2 - lu_l^2) / (2 * log(lu_u / lu_l)) -
                        lu_mean^2),
    normal = list(p = prior_normal(2, 0.5), lo = -Inf, hi = Inf,
                  mean = 2, var = 0.25),
    lognormal = list(p = prior_lognormal(ln_m, ln_s), lo = 0, hi = Inf,
                     mean = exp(ln_m + ln_s^2 / 2),
                     var = (exp(ln_s^2) - 1) * exp(2 * ln_m + ln_s^2)),
    truncnormal_mid = c(list(p = prior_truncnormal(1, 2, 0, 3), lo = 0,
                             hi = 3),
                        tn_moments(1, 2, 0, 3)),
    truncnormal_uppertail = c(list(p = prior_truncnormal(0, 1, 8, 10), lo = 8,
                                   hi = 10),
                              tn_moments(0, 1, 8, 10)),
    truncnormal_lowertail = c(list(p = prior_truncnormal(0, 1, -Inf, -3),
                                   lo = -Inf, hi = -3),
                              tn_moments(0, 1, -Inf, -3)),
    truncnormal_lowerband = c(list(p = prior_truncnormal(0, 1, -4, -3),
                                   lo = -4, hi = -3),
                              tn_moments(0, 1, -4, -3))
  )
}

# density of a one-parameter prior as a vectorised function of x
density_fun <- function(prior) {
  force(prior)
  function(x) exp(log_prior(prior, matrix(x, ncol = 1)))
}

# CDF obtained by numerically integrating the density, tabulated at the
# sample quantiles (each gap holds ~1/400 of the mass) and interpolated
numeric_cdf <- function(prior, lo, x) {
  f <- density_fun(prior)
  grid <- sort(unique(quantile(x, probs = seq(0, 1, length.out = 401),
                               names = FALSE)))
  first <- integrate(f, lo, grid[1], rel.tol = 1e-8)$value
  pieces <- vapply(seq_len(length(grid) - 1L), function(i) {
    integrate(f, grid[i], grid[i + 1L], rel.tol = 1e-8)$value
  }, numeric(1))
  Fg <- first + c(0, cumsum(pieces))
  function(q) approx(grid, Fg, xout = q, rule = 2)$y
}

# ---- marginals -------------------------------------------------------------

test_that("each marginal density integrates to one over its support", {
  for (nm in names(marginal_cases())) {
    cs <- marginal_cases()[[nm]]
    total <- integrate(density_fun(cs$p), cs$lo, cs$hi, rel.tol = 1e-10,
                       subdivisions = 1000L)$value
    expect_equal(total, 1, tolerance = 1e-4, label = paste(nm, "mass"))
  }
})

test_that("marginal samples agree with the density (KS) and analytic mean", {
  cases <- marginal_cases()
  n <- 20000
  for (i in seq_along(cases)) {
    cs <- cases[[i]]
    nm <- names(cases)[i]
    set.seed(100 + i)
    x <- sample_prior(cs$p, n)
    expect_equal(dim(x), c(n, 1L))
    expect_true(all(x >= cs$lo & x <= cs$hi), label = paste(nm, "in support"))
    cdf <- numeric_cdf(cs$p, cs$lo, x[, 1])
    expect_gt(suppressWarnings(ks.test(x[, 1], cdf)$p.value), 0.001,
              label = paste(nm, "KS p-value"))
    se <- sqrt(cs$var / n)
    expect_lt(abs(mean(x) - cs$mean) / se, 4,
              label = paste(nm, "|mean error| in standard errors"))
  }
})

test_that("marginal log densities match the closed forms", {
  x <- c(0.5, 2, 7)
  expect_equal(log_prior(prior_uniform(0, 4), x), c(-log(4), -log(4), -Inf))
  expect_equal(log_prior(prior_loguniform(1, 10), x),
               c(-Inf, -log(2) - log(log(10)), -log(7) - log(log(10))))
  expect_equal(log_prior(prior_normal(1, 2), x), dnorm(x, 1, 2, log = TRUE))
  expect_equal(log_prior(prior_lognormal(0, 1), c(-1, 0, x)),
               c(-Inf, -Inf, dlnorm(x, 0, 1, log = TRUE)))
  expect_equal(log_prior(prior_truncnormal(1, 2, 0, 3), x),
               c(dnorm(x[1:2], 1, 2, log = TRUE) -
                   log(pnorm(1) - pnorm(-0.5)), -Inf))
  # far tail: finite and correctly normalised where naive pnorm differences
  # would lose all precision
  lp <- log_prior(prior_truncnormal(0, 1, 40, 41), 40)
  expect_true(is.finite(lp))
  expect_equal(lp, dnorm(40, log = TRUE) -
                 pnorm(40, lower.tail = FALSE, log.p = TRUE) -
                 log1p(-exp(pnorm(41, lower.tail = FALSE, log.p = TRUE) -
                              pnorm(40, lower.tail = FALSE, log.p = TRUE))))
  set.seed(7)
  s <- sample_prior(prior_truncnormal(0, 1, 40, 41), 1000)
  expect_true(all(s >= 40 & s <= 41))
  expect_true(all(is.finite(s)))
  # never NaN, -Inf outside the support
  out <- log_prior(prior_loguniform(1, 10), c(-5, 0, Inf, -Inf))
  expect_identical(out, rep(-Inf, 4))
})

test_that("vector arguments give a block of independent marginals", {
  m <- prior_normal(c(0, 1, 2), c(1, 2, 3))
  p <- nbi_prior(b = m)
  expect_identical(p$names, c("b1", "b2", "b3"))
  expect_equal(p$dim, 3L)
  th <- rbind(c(0.1, 0.2, 0.3), c(-1, 4, 2))
  expect_equal(log_prior(p, th),
               rowSums(matrix(dnorm(th, rep(0:2, each = 2),
                                    rep(1:3, each = 2), log = TRUE), 2)))
  # names(lower) are used when present; length-1 arguments are recycled
  u <- nbi_prior(x = prior_uniform(c(a = 0, b = -1), 1))
  expect_identical(u$names, c("a", "b"))
  expect_equal(unname(u$lower), c(0, -1))
  expect_equal(unname(u$upper), c(1, 1))
  set.seed(3)
  s <- sample_prior(u, 500)
  expect_true(all(s[, "b"] >= -1 & s[, "b"] <= 1))
  expect_true(min(s[, "b"]) < 0)
  expect_true(all(s[, "a"] >= 0 & s[, "a"] <= 1))
})

# ---- the joint prior -------------------------------------------------------

test_that("joint prior: names, bounds, sums of marginals, -Inf outside", {
  p <- nbi_prior(phi = prior_uniform(0, 2 * pi), A = prior_normal(1, 2),
                 s = prior_lognormal(0, 0.5))
  expect_s3_class(p, "nbi_prior")
  expect_identical(p$names, c("phi", "A", "s"))
  expect_equal(p$dim, 3L)
  expect_equal(unname(p$lower), c(0, -Inf, 0))
  expect_equal(unname(p$upper), c(2 * pi, Inf, Inf))
  expect_length(p$components, 3L)
  expect_equal(p$components$A$cols, 2L)

  set.seed(11)
  th <- sample_prior(p, 50)
  expect_true(is.matrix(th) && is.numeric(th))
  expect_equal(dim(th), c(50L, 3L))
  expect_identical(colnames(th), c("phi", "A", "s"))
  expected <- dunif(th[, 1], 0, 2 * pi, log = TRUE) +
    dnorm(th[, 2], 1, 2, log = TRUE) + dlnorm(th[, 3], 0, 0.5, log = TRUE)
  expect_equal(log_prior(p, th), expected)

  # outside the uniform's bounds
  bad <- th[1:3, ]
  bad[1, "phi"] <- -0.1
  bad[2, "phi"] <- 7
  bad[3, "s"] <- -1
  expect_identical(log_prior(p, bad), rep(-Inf, 3))
  expect_identical(in_support(p, bad), rep(FALSE, 3))
  expect_identical(in_support(p, th[1:3, ]), rep(TRUE, 3))

  # a plain vector is one row; a one-row matrix works; data frames work
  expect_equal(log_prior(p, unname(th[1, ])), expected[1])
  expect_equal(log_prior(p, th[2, , drop = FALSE]), expected[2])
  expect_equal(log_prior(p, as.data.frame(th[1:4, ])), expected[1:4])
  # columns matched by name when all names are present
  expect_equal(log_prior(p, th[1:4, c("s", "phi", "A")]), expected[1:4])

  # reproducible with set.seed
  set.seed(5)
  a <- sample_prior(p, 10)
  set.seed(5)
  b <- sample_prior(p, 10)
  expect_identical(a, b)
  expect_equal(dim(sample_prior(p, 0)), c(0L, 3L))
})

test_that("a single marginal is a one-parameter prior named theta", {
  m <- prior_uniform(2, 3)
  set.seed(1)
  x <- sample_prior(m, 5)
  expect_identical(colnames(x), "theta")
  expect_true(all(x >= 2 & x <= 3))
  # for one parameter a vector is n rows
  expect_equal(log_prior(m, c(1, 2.5, 2.7)), c(-Inf, 0, 0))
  expect_identical(sample_prior(list(a = m), 1) >= 2, matrix(TRUE, 1, 1,
                   dimnames = list(NULL, "a")))
})

# ---- custom blocks ---------------------------------------------------------

test_that("prior_custom: a correlated 2-D Gaussian", {
  S <- matrix(c(1, 0.8, 0.8, 1), 2)
  R <- chol(S)
  Si <- solve(S)
  ld <- function(theta) {
    -0.5 * rowSums((theta %*% Si) * theta) - log(2 * pi) - 0.5 * log(det(S))
  }
  smp <- function(n) matrix(rnorm(2 * n), n) %*% R
  cg <- prior_custom(sample = smp, log_density = ld, dim = 2)
  expect_s3_class(cg, "nbi_custom")

  # constructing the block does not consume the user's random numbers
  set.seed(9)
  r1 <- runif(3)
  set.seed(9)
  cg <- prior_custom(sample = smp, log_density = ld, dim = 2)
  expect_identical(runif(3), r1)

  p <- nbi_prior(z = cg, w = prior_uniform(0, 1))
  expect_identical(p$names, c("z1", "z2", "w"))
  set.seed(2)
  th <- sample_prior(p, 4000)
  expect_equal(dim(th), c(4000L, 3L))
  expect_identical(colnames(th), c("z1", "z2", "w"))
  expect_equal(cor(th[, 1], th[, 2]), 0.8, tolerance = 0.03)
  expect_equal(log_prior(p, th[1:20, ]), ld(th[1:20, 1:2]))
  manual <- -0.5 * (1^2 - 2 * 0.8 * 1 * 0.5 + 0.5^2) / (1 - 0.64) -
    log(2 * pi) - 0.5 * log(1 - 0.64)
  expect_equal(log_prior(p, c(1, 0.5, 0.3)), manual)
  expect_identical(log_prior(p, c(1, 0.5, 1.3)), -Inf)

  # column names returned by sample() become parameter names; bounds clip
  named <- prior_custom(function(n) cbind(x = rnorm(n), y = rnorm(n)),
                        function(theta) rowSums(dnorm(theta, log = TRUE)),
                        dim = 2, lower = c(-1, -Inf))
  q <- nbi_prior(blk = named)
  expect_identical(q$names, c("x", "y"))
  expect_equal(unname(q$lower), c(-1, -Inf))
  expect_equal(log_prior(q, rbind(c(0, 0), c(-2, 0))),
               c(2 * dnorm(0, log = TRUE), -Inf))
  expect_identical(in_support(q, rbind(c(0, 0), c(-2, 0))), c(TRUE, FALSE))
  # NaN from the closure becomes -Inf
  nanblk <- prior_custom(function(n) matrix(runif(n), n),
                         function(theta) log(theta[, 1]) * NaN, dim = 1)
  expect_identical(log_prior(nbi_prior(u = nanblk), c(0.5, 0.2)), c(-Inf, -Inf))
})

# ---- errors ----------------------------------------------------------------

test_that("constructor and argument errors name the problem", {
  expect_error(nbi_prior(prior_uniform(0, 1)),
               "argument 1 is unnamed.*named by the argument names")
  expect_error(nbi_prior(a = prior_uniform(0, 1), prior_normal(0, 1)),
               "argument 2 is unnamed")
  expect_error(nbi_prior(a = prior_uniform(0, 1), a = prior_normal(0, 1)),
               "duplicate.*`a`")
  expect_error(nbi_prior(b = prior_normal(c(0, 0), 1), b1 = prior_normal(0, 1)),
               "duplicate parameter name.*`b1`")
  expect_error(nbi_prior(a = 3), "argument `a` is not a prior component")
  expect_error(nbi_prior(), "no prior components")

  expect_error(prior_normal(0, 0), "prior_normal\\(\\): `sd` must be positive")
  expect_error(prior_normal(0, -1), "`sd` must be positive")
  expect_error(prior_lognormal(0, 0), "`sdlog` must be positive")
  expect_error(prior_truncnormal(0, -1, 0, 1), "`sd` must be positive")
  expect_error(prior_uniform(1, 1), "prior_uniform\\(\\): `lower` must be less than `upper`")
  expect_error(prior_uniform(2, 1), "`lower` must be less than `upper`")
  expect_error(prior_truncnormal(0, 1, 2, 1), "`lower` must be less than `upper`")
  expect_error(prior_loguniform(0, 1), "`lower` must be positive")
  expect_error(prior_loguniform(5, 1), "`lower` must be less than `upper`")
  expect_error(prior_uniform(0, Inf), "`upper` must contain finite numbers")
  expect_error(prior_normal(NA_real_, 1), "`mean` must not contain NA")
  expect_error(prior_uniform("a", 1), "`lower` must be a non-empty numeric")
  expect_error(prior_uniform(c(0, 0, 0), c(1, 2)), "equal lengths")

  expect_error(prior_custom(1, function(t) 0, 1), "`sample` must be a function")
  expect_error(prior_custom(function(n) matrix(0, n), 1, 1),
               "`log_density` must be a function")
  expect_error(prior_custom(function(n) matrix(0, n), function(t) 0, 1.5),
               "`dim` must be a positive integer")
  expect_error(prior_custom(function(n) matrix(0, n), function(t) 0, 0),
               "`dim` must be a positive integer")
  expect_error(prior_custom(function(n) matrix(0, n, 3),
                            function(t) rep(0, nrow(t)), 2),
               "expected a numeric 2 x 2 matrix")

  p <- nbi_prior(a = prior_uniform(0, 1), b = prior_normal(0, 1))
  expect_error(sample_prior(p, -1), "sample_prior\\(\\): `n` must be a single whole number >= 0")
  expect_error(sample_prior(p, 2.5), "`n` must be")
  expect_error(sample_prior(p, c(1, 2)), "`n` must be")
  expect_error(sample_prior(p, NA), "`n` must be")
  expect_error(sample_prior(p, "10"), "`n` must be")

  expect_error(log_prior(p, c(0.5, NA)), "NA")
  expect_error(log_prior(p, c(1, 2, 3)), "vector of length 3")
  expect_error(log_prior(p, matrix(0, 2, 3)), "3 unnamed column")
  expect_error(log_prior(p, "a"), "must be a numeric matrix")

  expect_error(as_nbi_prior(prior_uniform(0, 1)),
               "`prior` must be named: use nbi_prior\\(name = ")
  expect_error(as_nbi_prior(list(prior_uniform(0, 1)), arg = "pr"),
               "`pr` must be named")
  expect_error(as_nbi_prior(42), "must be an nbi_prior")
  expect_identical(as_nbi_prior(p), p)
  q <- as_nbi_prior(list(a = prior_uniform(0, 1), b = prior_normal(0, 1)))
  expect_identical(q$names, p$names)
  expect_error(sample_prior(42, 2), "must be an nbi_prior")
})

# ---- printing --------------------------------------------------------------

test_that("print methods show the distributions", {
  expect_output(print(prior_uniform(0, 2 * pi)),
                "<nbi marginal: uniform\\(0, 6.28\\)>", fixed = FALSE)
  expect_output(print(prior_truncnormal(0, 1, 8, 10)),
                "truncnormal\\(0, 1, 8, 10\\)")
  p <- nbi_prior(phi = prior_uniform(0, 2 * pi), A = prior_loguniform(1, 10))
  out <- capture.output(res <- print(p))
  expect_identical(res, p)
  expect_match(out[1], "2 parameters")
  expect_true(any(grepl("phi +uniform", out)))
  expect_true(any(grepl("A +loguniform.*\\[1, 10\\]", out)))
})

test_that("draws are mapped to parameters and checked against the prior's box in C", {
  z <- matrix(c(0, 0, 1, -1, 3, 0.5, NaN, 0), 2)  # 2 parameters x 4 draws, 2 per observation
  lq <- c(-1, -2, -3, -4)
  nm <- c("a", "b")
  r <- .Call(C_r_draws_theta, z, lq, 2L, c(1, 0), c(2, 1), c(-Inf, -0.9), c(Inf, 1), nm)
  th <- t(z) * rep(c(2, 1), each = 4) + rep(c(1, 0), each = 4)
  expect_equal(r$theta[[1]], matrix(th[1:2, ], 2, dimnames = list(NULL, nm)))
  expect_equal(r$theta[[2]], matrix(th[3:4, ], 2, dimnames = list(NULL, nm)))
  expect_equal(r$log_q, list(lq[1:2] - log(2), lq[3:4] - log(2)))
  expect_identical(r$inside, c(TRUE, FALSE, TRUE, FALSE))  # -1 < -0.9; NaN is outside
  expect_identical(r$n_inside, c(1L, 1L))
  expect_error(.Call(C_r_draws_theta, z, lq, 2L, c(1, 0, 0), c(2, 1, 1), rep(-Inf, 3),
                     rep(Inf, 3), c(nm, "c")), "z")
  expect_error(.Call(C_r_draws_theta, z, lq, 3L, c(1, 0), c(2, 1), c(-Inf, -1), c(Inf, 1), nm),
               "per")
  expect_error(.Call(C_r_draws_theta, z, lq, 2L, c(1, 0), 2, c(-Inf, -1), c(Inf, 1), nm), "sd")
  expect_error(.Call(C_r_draws_theta, z, lq, 2L, 1:2, c(2, 1), c(-Inf, -1), c(Inf, 1), nm), "mean")
  expect_error(.Call(C_r_draws_theta, z, lq[1:3], 2L, c(1, 0), c(2, 1), c(-Inf, -1), c(Inf, 1), nm),
               "log_q")
  expect_error(.Call(C_r_draws_theta, z, lq, 2L, c(1, 0), c(2, 1), c(-Inf, -1), c(Inf, 1), "a"),
               "names")
})

test_that("predict() keeps only draws inside a custom block's support, for each observation", {
  disc <- prior_custom(function(n) {
    r <- sqrt(stats::runif(n)); a <- stats::runif(n, 0, 2 * pi)
    cbind(u = r * cos(a), v = r * sin(a))
  }, function(th) ifelse(rowSums(th^2) < 1, -log(pi), -Inf), dim = 2)
  eng <- nbi_engine(function(th) th, nbi_prior(disc = disc), noise = 0.3)
  eng <- fit(eng, n_sims = 300, n_epochs = 2, seed = 1, verbose = FALSE)
  post <- predict(eng, rbind(c(0.9, 0), c(0, -0.95), c(0.2, 0.1)), n_samples = 500,
                  importance = FALSE, seed = 2)
  for (p in post) {
    expect_identical(nrow(p$theta), 500L)
    expect_true(all(rowSums(p$theta^2) < 1))
  }
  # near the rim many surrogate draws fall outside: the acceptance rate says so
  expect_lt(post[[2]]$acceptance, post[[3]]$acceptance)
})
