export { authenticodeSha384 } from "./authenticode.js";
export { measureTdx, type TdxMeasurement, type TdxMeasureOptions } from "./measure.js";
export { computeMrtd, TDX_PAGE_ORDERS, type TdxPageOrder } from "./mrtd.js";
export { loadOptions, RTMR_SIZE, replayRtmr, rtmr1Events, rtmr2Events, TDVF_INITRD_PREFIX } from "./rtmr.js";
export {
  parseTdvf,
  TDVF_ATTR_MR_EXTEND,
  TDVF_ATTR_PAGE_AUG,
  type TdvfSection,
  TdvfSectionType,
  type TdvfSectionTypeName,
} from "./tdvf.js";
