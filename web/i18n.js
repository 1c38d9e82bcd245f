// Korean first, English too. Keys are stable; codes from the API (categories, states, reasons)
// are translated here.
const T = {
  ko: {
    "login.subtitle": "드론 출동 운영 화면", "login.user": "사용자", "login.password": "비밀번호",
    "login.submit": "로그인", "login.failed": "로그인 실패", logout: "로그아웃",
    "queue.title": "사건 대기열", "missions.title": "진행 중 임무", "drones.title": "드론",
    dispatch: "출동", close: "종료", "close.prompt": "처리 결과를 입력하세요", recommended: "추천",
    "no.drone": "출동 가능한 드론 없음", eta: "도착 예상", min: "분",
    pause: "일시정지", resume: "재개", rtl: "복귀", land: "착륙", abort: "중단",
    "confirm.command": "{drone}에 '{cmd}' 명령을 보낼까요?", battery: "배터리", alt: "고도", speed: "속도",
    mode: "모드", link: "링크", "conn.open": "실시간", "conn.connecting": "연결 중", "conn.closed": "끊김",
    "cat.fire": "화재", "cat.traffic_accident": "교통사고", "cat.crime": "범죄", "cat.missing_person": "실종자",
    "cat.flood": "침수", "cat.environment": "환경", "cat.facility": "시설물", "cat.other": "기타",
    "st.planned": "계획", "st.uploading": "업로드", "st.launching": "이륙 중", "st.enroute": "이동 중",
    "st.on_scene": "현장 도착", "st.returning": "복귀 중", "st.completed": "완료", "st.aborted": "중단됨",
    "st.failed": "실패", "ds.ready": "대기", "ds.in_mission": "임무 중", "ds.returning": "복귀 중",
    "ds.offline": "오프라인", "ds.charging": "충전 중", "ds.docked": "도크", "ds.maintenance": "정비",
    "sev.1": "경미", "sev.2": "보통", "sev.3": "심각", "sev.4": "매우 심각", ago: "전",
  },
  en: {
    "login.subtitle": "Drone dispatch operations view", "login.user": "User", "login.password": "Password",
    "login.submit": "Log in", "login.failed": "Login failed", logout: "Log out",
    "queue.title": "Incident queue", "missions.title": "Active missions", "drones.title": "Drones",
    dispatch: "Dispatch", close: "Close", "close.prompt": "Outcome of the incident", recommended: "Recommended",
    "no.drone": "No drone available", eta: "ETA", min: "min",
    pause: "Pause", resume: "Resume", rtl: "RTL", land: "Land", abort: "Abort",
    "confirm.command": "Send '{cmd}' to {drone}?", battery: "Battery", alt: "Alt", speed: "Speed",
    mode: "Mode", link: "Link", "conn.open": "live", "conn.connecting": "connecting", "conn.closed": "offline",
    "cat.fire": "Fire", "cat.traffic_accident": "Traffic accident", "cat.crime": "Crime",
    "cat.missing_person": "Missing person", "cat.flood": "Flood", "cat.environment": "Environment",
    "cat.facility": "Facility", "cat.other": "Other",
    "st.planned": "planned", "st.uploading": "uploading", "st.launching": "launching", "st.enroute": "en route",
    "st.on_scene": "on scene", "st.returning": "returning", "st.completed": "completed", "st.aborted": "aborted",
    "st.failed": "failed", "ds.ready": "ready", "ds.in_mission": "in mission", "ds.returning": "returning",
    "ds.offline": "offline", "ds.charging": "charging", "ds.docked": "docked", "ds.maintenance": "maintenance",
    "sev.1": "minor", "sev.2": "moderate", "sev.3": "severe", "sev.4": "extreme", ago: "ago",
  },
};

let lang = localStorage.getItem("dd.lang") || "ko";

export function t(key, vars = {}) {
  let s = (T[lang] && T[lang][key]) ?? T.en[key] ?? key;
  for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
  return s;
}

export function getLang() { return lang; }

export function setLang(next) {
  lang = next;
  localStorage.setItem("dd.lang", next);
  document.documentElement.lang = next;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
