/**
 * The ML runtime of solescope: tfjs backend selection, pretrained backbones, the study's preprocessing and
 * the CAM machinery. Plugins import it as `../../engine/ml/index.ts`; `engine/index.ts` deliberately does not
 * re-export it, so transports (CLI, HTTP, Discord) never load tfjs.
 */
export * from './types.ts';
export * from './runtime.ts';
export * from './model-io.ts';
export * from './backbones.ts';
export * from './opencv.ts';
export * from './preprocess.ts';
export * from './cam.ts';
export * from './nuisance.ts';
export * from './head.ts';
export * from './onnx/index.ts';
