#' nbi: neural posterior estimation for astronomy
#'
#' Train a conditional normalizing flow on simulations once, then return a posterior
#' for any new observation in milliseconds. The flow, featurizers, training and sampling run
#' in C through R's BLAS. Start with [nbi_engine()], [fit.nbi_engine()] and
#' [predict.nbi_engine()].
#'
#' @keywords internal
#' @useDynLib nbi, .registration = TRUE, .fixes = "C_"
#' @importFrom generics fit
#' @importFrom stats predict
"_PACKAGE"

#' @export
generics::fit
