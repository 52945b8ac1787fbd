# Augmentations that change the parameters (a noise function returning list(x, theta)) and
# selection cuts (nbi_cut() from a simulator, `cut` from a noise function), on problems with
# known posteriors.

test_that("a shift of x and theta together trains the posterior of the shifted parameter", {
  skip_on_cran()
  # data theta ~ N(0, 1), x = theta + N(0, 0.5^2); each epoch shifts both by s ~ N(0, 1):
  # theta' ~ N(0, 2), x' | theta' ~ N(theta', 0.25), so theta' | x' ~ N(x' / 1.125, 2 / 9)
  n <- 3000
  theta <- with_seed(1, matrix(stats::rnorm(n), n, dimnames = list(NULL, "mu")))
  x <- theta + with_seed(2, matrix(stats::rnorm(n, sd = 0.5), n))
  shift <- function(x, theta) {
    s <- stats::rnorm(nrow(x))
    list(x = x + s, theta = theta + s)
  }
  eng <- nbi_engine(function(th) th[["mu"]], nbi_prior(mu = prior_normal(0, sqrt(2))),
                    noise = shift, flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
  eng <- fit(eng, theta = theta, x = x, n_epochs = 40, seed = 3, threads = 1, verbose = FALSE)
  for (xo in c(-1.5, 0.5, 2)) {
    p <- predict(eng, xo, n_samples = 4000, importance = FALSE, seed = 4)
    expect_lt(abs(mean(p$theta[, 1]) - xo / 1.125), 0.1)   # posterior sd 0.47
    expect_equal(stats::sd(p$theta[, 1]), sqrt(2 / 9), tolerance = 0.12)
  }
  # without moving theta the same shift gives another posterior: N(x / 2.25, 1 / 1.8)
  eng0 <- eng
  eng0$noise <- function(x, theta) x + stats::rnorm(nrow(x))
  eng0 <- fit(eng0, theta = theta, x = x, n_epochs = 40, seed = 3, threads = 1, verbose = FALSE)
  p0 <- predict(eng0, 2, n_samples = 4000, importance = FALSE, seed = 4)
  expect_gt(abs(mean(p0$theta[, 1]) - 2 / 1.125), 0.5)
})

test_that("an augmented theta outside the prior or of the wrong shape is an error", {
  sim <- function(th) th[["mu"]] + stats::rnorm(2)
  eng <- nbi_engine(sim, nbi_prior(mu = prior_uniform(0, 1)),
                    noise = function(x, theta) list(x = x, theta = theta + 5),
                    flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  expect_error(fit(eng, n_sims = 50, n_epochs = 1, seed = 1, verbose = FALSE),
               "outside the prior's support")
  eng$noise <- function(x, theta) list(x = x, theta = theta[-1, , drop = FALSE])
  expect_error(suppressMessages(fit(eng, n_sims = 50, n_epochs = 1, seed = 1, verbose = FALSE)),
               "`theta` as a 45 x 1 numeric matrix")
})

test_that("cut simulations are counted, stored as cut and never fatal unless none pass", {
  sim <- function(th) {
    x <- th[["mu"]] + stats::rnorm(1)
    if (x < 0.8) return(nbi_cut("below the detection limit"))
    x
  }
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), workdir = tempfile("nbi-cut-"))
  s <- with_seed(1, nbi_simulate(eng, 400))
  expect_gt(s$n_cut, 200)                       # far more than half are cut: no error
  expect_equal(nrow(s$theta) + s$n_cut + s$n_failed, 400)
  expect_true(all(s$x >= 0.8))
  files <- list.files(attr(s, "sim_dir"), full.names = TRUE)
  saved <- do.call(c, lapply(files, function(f) readRDS(f)$cut))
  expect_equal(sum(saved), s$n_cut)
  expect_match(unique(unlist(lapply(files, function(f) {
    v <- readRDS(f); v$reason[v$cut]
  }))), "cut: below the detection limit")
  # resuming reads the same cuts back
  expect_message(s2 <- with_seed(1, nbi_simulate(eng, 400)), "resuming")
  expect_identical(s2$n_cut, s$n_cut)
  eng$simulator <- function(th) nbi_cut()
  expect_error(nbi_simulate(eng, 10), "cut every simulation")
  expect_output(print(nbi_cut("faint")), "nbi cut: faint")
  expect_error(nbi_cut(1), "`reason`")
})

test_that("training on the selected population gives the posterior of a cut on the data", {
  skip_on_cran()
  # mu ~ N(0, 1), x = mu + N(0, 1), kept when x > 0: for any kept x the posterior is
  # still N(x / 2, 1 / 2) (the cut is a function of x alone)
  sim <- function(th) {
    x <- th[["mu"]] + stats::rnorm(1)
    if (x <= 0) nbi_cut() else x
  }
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)),
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
  eng <- fit(eng, n_sims = 5000, n_epochs = 40, seed = 5, threads = 1, verbose = FALSE)
  expect_gt(eng$history$rounds$n_cut, 2000)
  expect_equal(eng$history$rounds$n_cut + eng$history$rounds$n_sims, 5000)
  for (xo in c(0.5, 1.5)) {
    p <- predict(eng, xo, n_samples = 4000, importance = FALSE, seed = 6)
    expect_lt(abs(mean(p$theta[, 1]) - xo / 2), 0.1)       # posterior sd 0.71
    expect_equal(stats::sd(p$theta[, 1]), sqrt(1 / 2), tolerance = 0.12)
  }
})

test_that("a noise function's cuts are replaced by passing simulations and counted", {
  n <- 200
  theta <- with_seed(1, matrix(stats::rnorm(n), n, dimnames = list(NULL, "mu")))
  x <- theta + with_seed(2, matrix(stats::rnorm(n), n))
  seen <- new.env()
  eng <- nbi_engine(function(th) th[["mu"]], nbi_prior(mu = prior_normal(0, 1)),
                    noise = function(x, theta) list(x = x, cut = x[, 1] < 0),
                    flow = flow_maf(blocks = 1, hidden = 4, mixture = 1))
  out <- with_seed(3, nbi:::apply_noise(eng$noise, x, theta, NULL, eng$prior))
  expect_equal(out$n_cut, sum(x < 0))
  expect_true(all(out$x >= 0))
  # every replacement is a passing (x, theta) pair of the draw, kept together
  key <- paste(x, theta)
  expect_true(all(paste(out$x, out$theta) %in% key[x >= 0]))
  eng <- fit(eng, theta = theta, x = x, n_epochs = 3, seed = 1, verbose = FALSE)
  expect_gt(eng$history$noise_cut, 3 * 0.3 * n)
  eng$noise <- function(x, theta) list(x = x, cut = rep(TRUE, nrow(x)))
  expect_error(fit(eng, theta = theta, x = x, n_epochs = 1, seed = 1, verbose = FALSE),
               "cut every simulation")
})
