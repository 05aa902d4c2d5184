/**
 * Evaluation metrics in the shape every solescope evaluation reports: the engine's single implementation
 * (engine/ml/metrics.ts) under the training plugin's names.
 */
export {
  bootstrapInterval,
  classificationReport as evaluate,
  formatRange,
  formatReport as formatEvaluation,
  type BootstrapInterval,
  type ClassificationReport as Evaluation,
  type ClassMetrics,
} from '../../../engine/ml/metrics.ts';
