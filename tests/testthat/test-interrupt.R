# An interrupt while C trains (signalled here from the per-epoch noise callback, which runs
# inside the C training loop) unwinds cleanly: the engine the user holds stays usable,
# R_alloc'ed work memory is released, and the BLAS thread count is restored.

test_that("an interrupt during training leaves the engine usable", {
  calls <- new.env()
  calls$n <- 0L
  calls$limit <- Inf
  noise <- function(x, theta) {
    calls$n <- calls$n + 1L
    if (calls$n > calls$limit)
      stop(structure(class = c("interrupt", "condition"), list(message = "", call = NULL)))
    x + matrix(stats::rnorm(length(x), sd = 0.3), nrow(x))
  }
  sim <- function(th) th[["mu"]] + c(0, 0.5, -0.5)
  eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)), noise = noise,
                    flow = flow_maf(blocks = 2, hidden = 16, mixture = 2))
  eng <- fit(eng, n_sims = 400, n_epochs = 3, seed = 1, verbose = FALSE)
  before <- predict(eng, c(0.2, 0.7, -0.3), n_samples = 300, seed = 5)
  blas <- .Call(nbi:::C_r_blas_threads, NA_integer_)
  calls$n <- 0L
  calls$limit <- 4L  # the validation set's noise, then 3 training epochs, then Ctrl-C
  got <- tryCatch(fit(eng, n_sims = 400, n_epochs = 50, seed = 2, verbose = FALSE),
                  interrupt = function(e) "interrupted")
  expect_identical(got, "interrupted")
  expect_identical(.Call(nbi:::C_r_blas_threads, NA_integer_), blas)
  after <- predict(eng, c(0.2, 0.7, -0.3), n_samples = 300, seed = 5)
  expect_identical(after$theta, before$theta)
  # and it trains again afterwards
  calls$limit <- Inf
  eng2 <- fit(eng, n_sims = 400, n_epochs = 3, seed = 1, verbose = FALSE)
  expect_identical(eng2$model$params, eng$model$params)
})
