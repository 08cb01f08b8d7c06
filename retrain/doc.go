// Package retrain learns a diffusion prior from undersampled scans only, by
// expectation-maximisation: lap 0 fits a Gaussian prior to the observations
// (FitGaussianEM), each later lap draws one posterior sample per scan under
// the last prior (EStep) and trains the network on them (priors.Train),
// warm-started. RunEM checkpoints every lap and resumes an interrupted run;
// Retrain reads a k-space archive, prepares it as reconstruction does and
// runs RunEM on it.
package retrain
