# Precomputes the results shown in vignette("photometric-sets"): run from the package root with
#   Rscript vignettes/precompute-photometric-sets.R
# (about 5 minutes on 2 cores; 11 when other jobs share them). Writes
# vignettes/photometric-sets-results.rds, which the vignette loads.
library(nbi)
timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  v <- force(expr)
  list(value = v, seconds = proc.time()[["elapsed"]] - t0)
}
t_start <- proc.time()[["elapsed"]]

# ---- the forward model (identical to the vignette's evaluated chunks) ----------------------
bands <- data.frame(
  name   = c("u", "g", "r", "i", "z", "BP", "G", "RP", "J", "H", "Ks"),
  lambda = c(0.356, 0.472, 0.619, 0.750, 0.896, 0.511, 0.640, 0.777, 1.235, 1.662, 2.159),
  depth  = c(22.0, 23.0, 22.7, 22.2, 21.0, 20.3, 20.7, 19.8, 20.5, 20.0, 19.5))

star_mags <- function(theta, band = seq_len(nrow(bands))) {
  T <- 10^theta[["logTeff"]]
  lam <- bands$lambda[band]
  f_nu <- function(l) l^-3 / expm1(14388 / (l * T))      # black body, per unit frequency
  theta[["V0"]] - 2.5 * log10(f_nu(lam) / f_nu(0.55)) + theta[["A_V"]] * (lam / 0.55)^-1.3
}

simulator <- function(theta) {
  mag <- star_mags(theta)
  err <- pmin(0.5, 0.02 + 0.2 * 10^(0.4 * (mag - bands$depth)))
  cbind(band = seq_len(nrow(bands)), mag = mag, err = err)
}

observe <- function(x, theta) {
  s <- do.call(rbind, x)                            # all stars' 11 bands, stacked
  star <- rep(seq_along(x), each = nrow(bands))
  k <- sample(3:10, length(x), replace = TRUE)      # number of filters each star gets
  s <- s[order(star, stats::runif(nrow(s))), ]      # shuffle the bands within each star
  s <- s[rep(seq_len(nrow(bands)), length(x)) <= k[star], , drop = FALSE]  # keep k of them
  s[, "err"] <- s[, "err"] * stats::runif(nrow(s), 0.7, 1.4)             # observing conditions
  s[, "mag"] <- s[, "mag"] + stats::rnorm(nrow(s), sd = s[, "err"])
  last <- cumsum(k)
  lapply(seq_along(x), function(i) s[(last[i] - k[i] + 1):last[i], , drop = FALSE])
}

log_lik <- function(x_obs, x_sim, theta, x_err) {
  model <- x_sim[match(x_obs[, "band"], x_sim[, "band"]), "mag"]
  sum(stats::dnorm(x_obs[, "mag"], model, x_obs[, "err"], log = TRUE))
}

prior <- nbi_prior(logTeff = prior_uniform(log10(3500), log10(15000)),
                   A_V = prior_uniform(0, 2), V0 = prior_uniform(12, 18))

# ---- training ----------------------------------------------------------------------------
set.seed(3)
engine <- nbi_engine(simulator, prior, noise = observe, log_likelihood = log_lik,
                     featurizer = featurizer_set_transformer(n_tokens = 11, d_model = 32,
                                                             heads = 4, layers = 2,
                                                             hidden = 64, dim_out = 32),
                     flow = flow_maf(blocks = 5, hidden = 64, mixture = 4))
trained <- timed(fit(engine, n_sims = 30000, n_epochs = 40, batch_size = 64, lr = 1e-3,
                     patience = 15, verbose = FALSE))
engine <- trained$value

# ---- one star ----------------------------------------------------------------------------
truth1 <- c(logTeff = log10(5800), A_V = 0.6, V0 = 15)
x1 <- observe(list(simulator(truth1)), NULL)[[1]]
post1 <- predict(engine, x1, n_samples = 4000, importance = FALSE)
post1_is <- predict(engine, x1, n_samples = 4000)

# ---- a catalogue of 3,000 stars, in one call ---------------------------------------------
n_cat <- 3000
truth <- sample_prior(prior, n_cat)
catalogue <- observe(lapply(seq_len(n_cat), function(i) simulator(truth[i, ])), truth)
amortised <- timed(predict(engine, catalogue, n_samples = 500, importance = FALSE))
posts <- amortised$value
med <- t(sapply(posts, function(p) apply(p$theta, 2, median)))
rank <- t(sapply(seq_len(n_cat), function(i) colMeans(sweep(posts[[i]]$theta, 2, truth[i, ]) < 0)))
inside90 <- abs(rank - 0.5) <= 0.45          # truth inside the central 90% interval
colMeans(inside90)

# ---- importance-sampling refinement of five catalogue stars ------------------------------
refine <- lapply(1:5, function(i) {
  plain <- timed(predict(engine, catalogue[[i]], n_samples = 4000))
  wide <- predict(engine, catalogue[[i]], n_samples = 4000, temper = 1.5)
  list(plain = plain$value, wide = wide, seconds = plain$seconds)
})

# ---- save what the vignette shows --------------------------------------------------------
strip <- function(p) {
  p$x_obs <- NULL
  p$theta <- round(p$theta, 4)
  p
}
quantiles <- function(p, w = NULL) {
  q <- sapply(colnames(p$theta), function(j) {
    x <- p$theta[, j]
    if (is.null(w)) return(stats::quantile(x, c(0.05, 0.5, 0.95), names = FALSE))
    o <- order(x)
    x[o][findInterval(c(0.05, 0.5, 0.95), cumsum(w[o])) + 1]
  })
  rownames(q) <- c("q5", "q50", "q95")
  q
}
refined <- do.call(rbind, lapply(1:5, function(i) {
  r <- refine[[i]]
  data.frame(star = i, n_filters = nrow(catalogue[[i]]),
             n_eff = r$plain$n_eff, efficiency = r$plain$efficiency, pareto_k = r$plain$pareto_k,
             n_eff_wide = r$wide$n_eff, efficiency_wide = r$wide$efficiency,
             pareto_k_wide = r$wide$pareto_k, seconds = r$seconds)
}))
refined_q <- lapply(1:5, function(i) {
  p <- refine[[i]]$plain
  list(truth = truth[i, ], surrogate = quantiles(p), weighted = quantiles(p, p$weights),
       x_obs = catalogue[[i]])
})
seconds <- proc.time()[["elapsed"]] - t_start
saveRDS(list(
  bands = bands,
  train = list(epochs = engine$history$epochs, seconds = trained$seconds, n_sims = 30000),
  star = list(truth = truth1, x_obs = x1, surrogate = strip(post1), weighted = strip(post1_is)),
  catalogue = list(n = n_cat, n_samples = 500, seconds = amortised$seconds,
                   truth = round(truth, 4), median = round(med, 4), rank = round(rank, 3),
                   n_filters = vapply(catalogue, nrow, integer(1))),
  refined = refined, refined_q = refined_q,
  seconds = seconds,
  made_with = as.character(utils::packageVersion("nbi")),
  cores = parallel::detectCores()), "vignettes/photometric-sets-results.rds", compress = "xz")
