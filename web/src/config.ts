// Build-time settings. The cafe's time zone comes from `WEB_CAFE_TIME_ZONE` when the app is
// built (vite.config.ts checks it names a real zone); the API itself stays in UTC.

declare const __CAFE_TIME_ZONE__: string;

export const CAFE_TIME_ZONE: string = __CAFE_TIME_ZONE__;
