#define R_NO_REMAP
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

SEXP r_model_init(SEXP, SEXP);
SEXP r_model_n_params(SEXP);
SEXP r_model_log_prob(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_model_sample(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_flow_grad(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_model_nll_grad(SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_train(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_linear(SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_act(SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_gemm(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_importance(SEXP, SEXP, SEXP);
SEXP r_obs_keys(SEXP, SEXP, SEXP);
SEXP r_model_log_prob_obs(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_model_features(SEXP, SEXP, SEXP, SEXP);
SEXP r_flow_block_kinds(void);
SEXP r_tmix_fit(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_tmix_sample(SEXP, SEXP, SEXP, SEXP);
SEXP r_tmix_log_density(SEXP, SEXP, SEXP, SEXP);
SEXP r_draws_theta(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_blas_threads(SEXP);
SEXP r_have_sgemm(void);
SEXP r_sgemm_kernel(void);
SEXP r_dgemm_kernel(void);
void nn_free_scratch(void);
SEXP r_nn_conv1d(SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_layernorm(SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_maxpool2(SEXP, SEXP, SEXP);
SEXP r_nn_gru(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_nn_segpool(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP, SEXP);
SEXP r_model_train_work(SEXP, SEXP, SEXP, SEXP);
SEXP r_c2st_fit_predict(SEXP, SEXP, SEXP, SEXP, SEXP, SEXP), r_c2st_loss_grad(SEXP, SEXP, SEXP, SEXP);

static const R_CallMethodDef call_methods[] = {
    /* used by the R functions */
    {"r_model_init", (DL_FUNC)&r_model_init, 2},
    {"r_model_log_prob", (DL_FUNC)&r_model_log_prob, 6},
    {"r_model_log_prob_obs", (DL_FUNC)&r_model_log_prob_obs, 7},
    {"r_model_features", (DL_FUNC)&r_model_features, 4},
    {"r_model_sample", (DL_FUNC)&r_model_sample, 7},
    {"r_draws_theta", (DL_FUNC)&r_draws_theta, 8},
    {"r_train", (DL_FUNC)&r_train, 9},
    {"r_importance", (DL_FUNC)&r_importance, 3},
    {"r_obs_keys", (DL_FUNC)&r_obs_keys, 3},
    {"r_tmix_fit", (DL_FUNC)&r_tmix_fit, 8},
    {"r_tmix_sample", (DL_FUNC)&r_tmix_sample, 4},
    {"r_tmix_log_density", (DL_FUNC)&r_tmix_log_density, 4},
    {"r_c2st_fit_predict", (DL_FUNC)&r_c2st_fit_predict, 6},
    {"r_blas_threads", (DL_FUNC)&r_blas_threads, 1},
    /* test-only (r_test_*.c): layers, gradients and probes for tests/ and bench/ */
    {"r_model_n_params", (DL_FUNC)&r_model_n_params, 1},
    {"r_flow_grad", (DL_FUNC)&r_flow_grad, 6},
    {"r_model_nll_grad", (DL_FUNC)&r_model_nll_grad, 5},
    {"r_c2st_loss_grad", (DL_FUNC)&r_c2st_loss_grad, 4},
    {"r_have_sgemm", (DL_FUNC)&r_have_sgemm, 0},
    {"r_sgemm_kernel", (DL_FUNC)&r_sgemm_kernel, 0},
    {"r_dgemm_kernel", (DL_FUNC)&r_dgemm_kernel, 0},
    {"r_flow_block_kinds", (DL_FUNC)&r_flow_block_kinds, 0},
    {"r_nn_linear", (DL_FUNC)&r_nn_linear, 4},
    {"r_nn_act", (DL_FUNC)&r_nn_act, 4},
    {"r_nn_gemm", (DL_FUNC)&r_nn_gemm, 8},
    {"r_nn_conv1d", (DL_FUNC)&r_nn_conv1d, 5},
    {"r_nn_layernorm", (DL_FUNC)&r_nn_layernorm, 5},
    {"r_nn_maxpool2", (DL_FUNC)&r_nn_maxpool2, 3},
    {"r_nn_gru", (DL_FUNC)&r_nn_gru, 7},
    {"r_nn_segpool", (DL_FUNC)&r_nn_segpool, 7},
    {"r_model_train_work", (DL_FUNC)&r_model_train_work, 4},
    {NULL, NULL, 0}};

void R_init_nbi(DllInfo *dll) {
    R_registerRoutines(dll, NULL, call_methods, NULL, NULL);
    R_useDynamicSymbols(dll, FALSE);
    R_forceSymbols(dll, TRUE);
}

void R_unload_nbi(DllInfo *dll) {
    (void)dll;
    nn_free_scratch();  /* the float32 copies' scratch (nn/gemm.c) */
}
